# Everything builds from nothing: `make test` on a fresh clone creates .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= config/vtlfabric.toml

.PHONY: run test lint bench soak venv clean floors scenarios sweep

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

# Every shipped scenario, each run twice (the second in a new process) with
# --check-determinism: each must meet its expectations and hash its history alike.
SCENARIOS ?= $(sort $(wildcard config/scenarios/*.toml))
scenarios: $(STAMP)
	@for s in $(SCENARIOS); do echo "== $$s"; $(BIN)/vtlfabric scenario run $$s --check-determinism || exit 1; done

# Many seeds of a scenario in parallel processes (vtlfabric scenario sweep): every seed
# must meet its expectations and break no invariant, and every fault kind of the scenario
# must fire. SWEEP_FOR: after SWEEP_SEEDS, go on with the next seeds until that much wall
# time has passed. CI sweeps 50 seeds from a random start, time-boxed.
# REGRESSION_SEEDS: seeds of chaos.toml that once failed, swept first every time (958557:
# two aux copy streams each waited for a cartridge the other had left in a drive; 401112:
# a MediaAgent's restart while the state disk was full ended the daemon).
SWEEP_FILE ?= config/scenarios/chaos.toml
SWEEP_SEEDS ?= 1-1000
SWEEP_FOR ?= 0s
REGRESSION_SEEDS ?= 958557,401112
sweep: $(STAMP)
	$(BIN)/vtlfabric scenario sweep $(SWEEP_FILE) --seeds $(REGRESSION_SEEDS),$(SWEEP_SEEDS) --time-box $(SWEEP_FOR)

# One style: the formatter's, and the lint rules (line length included) in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff format --check vtlfabric tests
	$(BIN)/ruff check vtlfabric tests

# The crash soak's long form: kill -9 the daemon at SOAK_CYCLES random moments (make test runs 30).
SOAK_CYCLES ?= 500
soak: $(STAMP)
	SOAK_CYCLES=$(SOAK_CYCLES) $(BIN)/python -m pytest -q -s tests/test_soak.py

# Throughput of backup, aux copy, restore and verify, and the event loop's lag meanwhile,
# beside Bacula 9.6's backup, Copy job and restore of the same bytes (skipped without Bacula);
# then the simulator: simulated seconds per wall second of the month scenario and the demo (5 runs each);
# then a catalog of BENCH_JOBS jobs: status, selection and a page of ctl jobs, timed.
# Each part's figures go to bench/, and all of them, with the machine, to bench/results.json.
BENCH_SIZE ?= 1GiB
BENCH_JOBS ?= 1000000
bench: $(STAMP)
	@.ci/bacula-deps || echo "warning: could not install Bacula; its rows will be skipped"
	@mkdir -p bench && rm -f bench/*.json
	$(BIN)/python -m tests.bench --size $(BENCH_SIZE) --json bench/throughput.json
	$(BIN)/python -m tests.benchsim --json bench/simulator.json
	$(BIN)/python -m tests.benchcatalog --jobs $(BENCH_JOBS) --json bench/catalog.json
	$(BIN)/python -m tests.benchresults --dir bench

# The dependency floors: a venv of its own with exactly the oldest release pyproject.toml
# allows of each (every ">=" read as "=="), and the tests that exercise them.
FLOORS_VENV := $(VENV)/floors
FLOORS_TESTS := tests/test_secure.py tests/test_catalog.py tests/test_fabric_jobs.py tests/test_e2e.py \
	tests/test_e2e_service.py tests/test_config.py tests/test_wan.py tests/test_selection.py \
	tests/test_restore_site.py tests/test_events_media.py tests/test_config_fuzz.py
floors:
	rm -rf $(FLOORS_VENV)
	$(PYTHON) -m venv $(FLOORS_VENV)
	$(FLOORS_VENV)/bin/pip install --quiet $$($(PYTHON) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
		print(" ".join(d.replace(">=", "==") for d in p["dependencies"] + p["optional-dependencies"]["test"] if ">=" in d))')
	$(FLOORS_VENV)/bin/pip install --quiet --no-deps -e .
	$(FLOORS_VENV)/bin/pip check
	$(FLOORS_VENV)/bin/pip freeze --exclude-editable
	$(FLOORS_VENV)/bin/python -m pytest -q -p no:cacheprovider $(FLOORS_TESTS)

clean:
	rm -rf $(VENV) state
