# Everything builds from nothing: `make test` on a fresh clone creates .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config/vtlfabric.toml

.PHONY: run test lint bench soak venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/vtlfabric run --config $(CONFIG)

test: $(STAMP)
	@.ci/debian-deps || echo "warning: could not install hercules; its tests will be skipped"
	$(BIN)/python -m pytest -q

# One style: the formatter's, and the lint rules (line length included) in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff format --check vtlfabric tests
	$(BIN)/ruff check vtlfabric tests

# The crash soak's long form: kill -9 the daemon at SOAK_CYCLES random moments (make test runs 30).
SOAK_CYCLES ?= 500
soak: $(STAMP)
	SOAK_CYCLES=$(SOAK_CYCLES) $(BIN)/python -m pytest -q -s tests/test_soak.py

# Throughput of backup, aux copy, restore and verify, and the event loop's lag meanwhile.
BENCH_SIZE ?= 64MiB
bench: $(STAMP)
	$(BIN)/python -m tests.bench --size $(BENCH_SIZE) --json bench.json

clean:
	rm -rf $(VENV) state
