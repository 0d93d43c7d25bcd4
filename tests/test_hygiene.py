"""The package stays replayable: no wall clock, no blocking sleeps, no bare threads, no global randomness.

Fabric time is Trio's clock (virtual in tests and scenarios), chance comes from seeded
``random.Random`` instances, and blocking work goes through the one seam, blocking.py
(threads under the real clock, inline under a virtual one): ``trio.to_thread`` anywhere
else would let a thread's speed decide the order of events in a scenario. A
wall-clock read or a real-time wait is allowed only on a line marked ``# clock-ok``
(the read that sets a new fabric's epoch; the CLI's own progress bar); threads and
global randomness have no allow-list. The check reads the code's syntax tree, so an
import alias or a ``from`` import cannot hide a call.

And the tests' own hygiene: a config edit whose anchor is gone fails instead of
leaving the config silently unedited.
"""

from __future__ import annotations

import ast
import io
import re
import textwrap
import tokenize
from pathlib import Path

import attrs
import pytest

from tests.helpers import edit_config

PACKAGE = Path(__file__).parent.parent / "vtlfabric"
ALLOW = "clock-ok"
SEAM = "vtlfabric/blocking.py"

WALL_CLOCK = frozenset(
    {
        "time.time",
        "time.time_ns",
        "time.monotonic",
        "time.monotonic_ns",
        "time.perf_counter",
        "time.perf_counter_ns",
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
    }
)
WALL_CLOCK_WITHOUT_ARGUMENTS = frozenset({"time.localtime", "time.gmtime", "time.ctime", "time.asctime"})  # "now" by default
SLEEP = frozenset({"time.sleep"})
THREADS = frozenset(
    {
        "threading.Thread",
        "threading.Timer",
        "concurrent.futures.ThreadPoolExecutor",
        "concurrent.futures.ProcessPoolExecutor",
        "concurrent.futures.thread.ThreadPoolExecutor",
        "concurrent.futures.process.ProcessPoolExecutor",
    }
)
THREAD_MODULES = ("_thread",)
SEEDABLE = frozenset({"random.Random", "random.SystemRandom"})  # instances: seeded, or the OS's entropy


@attrs.frozen
class Finding:
    file: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}"


def _allowed_lines(source: str) -> set[int]:
    """Lines with a ``# clock-ok`` comment (a real comment: not text inside a string)."""
    return {
        token.start[0]
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT and ALLOW in token.string
    }


class _Checker(ast.NodeVisitor):
    def __init__(self, file: str, allowed: set[int]) -> None:
        self.file, self.allowed = file, allowed
        self.aliases: dict[str, str] = {}  # local name -> what it names, e.g. "dt" -> "datetime.datetime"
        self.findings: list[Finding] = []

    def report(self, node: ast.AST, what: str, *, clock: bool = False) -> None:
        if clock and node.lineno in self.allowed:
            return
        self.findings.append(Finding(self.file, node.lineno, what))

    # Imports: remember what each local name stands for (module-level and function-level alike).
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] in THREAD_MODULES:
                self.report(node, f"import {alias.name} (a bare thread; use trio.to_thread)")
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                head = alias.name.split(".")[0]
                self.aliases[head] = head

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            return  # relative imports stay inside the package
        if node.module.split(".")[0] in THREAD_MODULES:
            self.report(node, f"from {node.module} import ... (a bare thread; use trio.to_thread)")
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def qualified(self, node: ast.AST) -> str | None:
        """``a.b.c`` as the dotted name it refers to, through the imports seen; None if not from an import."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            return None if base is None else f"{base}.{node.attr}"
        return None

    def check_reference(self, node: ast.Name | ast.Attribute) -> None:
        name = self.qualified(node)
        if name is None:
            return
        if name in WALL_CLOCK:
            self.report(node, f"{name} (a wall-clock read; fabric time is trio.current_time())", clock=True)
        elif name in SLEEP:
            self.report(node, f"{name} (blocks the loop in real time; use trio.sleep)", clock=True)
        elif name in THREADS or name.split(".")[0] in THREAD_MODULES:
            self.report(node, f"{name} (a bare thread; use trio.to_thread or a nursery)")
        elif name.startswith("trio.to_thread") and self.file != SEAM:
            self.report(node, f"{name} (blocking work goes through vtlfabric.blocking.run_sync, the one seam)")
        elif name.startswith("random.") and name.count(".") == 1 and name not in SEEDABLE:
            self.report(node, f"{name} (global randomness; draw from the fabric's seeded random.Random)")

    def visit_Name(self, node: ast.Name) -> None:
        self.check_reference(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.check_reference(node)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self.qualified(node.func)
        if not node.args and not node.keywords:
            if name in WALL_CLOCK_WITHOUT_ARGUMENTS:
                self.report(node, f"{name}() (reads the wall clock; pass the fabric's time)", clock=True)
            elif name == "random.Random":
                self.report(node, "random.Random() without a seed (global randomness; pass a seed)")
        self.generic_visit(node)


def check_source(source: str, file: str = "<source>") -> list[Finding]:
    checker = _Checker(file, _allowed_lines(source))
    checker.visit(ast.parse(source, filename=file))
    return sorted(checker.findings, key=lambda f: (f.file, f.line))


def check_package(root: Path = PACKAGE) -> list[Finding]:
    findings: list[Finding] = []
    for path in sorted(root.rglob("*.py")):
        findings += check_source(path.read_text(), str(path.relative_to(root.parent)))
    return findings


def test_the_package_reads_no_wall_clock_sleeps_starts_no_threads_and_draws_no_global_randomness():
    assert len(list(PACKAGE.rglob("*.py"))) > 20, "the package was found"
    findings = check_package()
    assert not findings, "keep these out of vtlfabric/ (or mark a deliberate wall-clock read # clock-ok):\n" + "\n".join(
        map(str, findings)
    )


SNIPPET = textwrap.dedent("""\
    import time
    import time as t
    import datetime
    import random
    import threading
    import _thread
    from datetime import date, datetime as dt
    from time import monotonic, sleep
    from concurrent.futures import ThreadPoolExecutor
    from random import shuffle
    import os

    def f(items):
        a = time.time()
        b = t.perf_counter()
        c = datetime.datetime.now()
        d = dt.utcnow()
        e = date.today()
        g = monotonic
        time.sleep(1)
        sleep(0.5)
        threading.Thread(target=f).start()
        threading.Timer(1, f)
        ThreadPoolExecutor(2)
        random.choice(items)
        random.randint(1, 6)
        shuffle(items)
        random.seed(1)
        random.Random()
        h = time.localtime()
        import trio
        trio.to_thread.run_sync(f)
        class Worker(threading.Thread):
            pass

    def fine(items, seed):
        rng = random.Random(seed)
        rng.shuffle(items)
        os.urandom(16)
        time.localtime(0)
        dt.fromtimestamp(0)
        x = "time.time()"  # clock-ok is no cover for anything else on other lines
        return time.time()  # clock-ok: the epoch
    """)


def test_the_checker_catches_each_kind_of_offence_through_any_import_and_spares_what_is_fine():
    lines = SNIPPET.splitlines()
    found = {f.line: f.what for f in check_source(SNIPPET, "snippet.py")}
    flagged = {lines[n - 1].strip() for n in found}
    assert flagged == {
        "import _thread",
        "a = time.time()",
        "b = t.perf_counter()",
        "c = datetime.datetime.now()",
        "d = dt.utcnow()",
        "e = date.today()",
        "g = monotonic",
        "time.sleep(1)",
        "sleep(0.5)",
        "threading.Thread(target=f).start()",
        "threading.Timer(1, f)",
        "ThreadPoolExecutor(2)",
        "class Worker(threading.Thread):",
        "random.choice(items)",
        "random.randint(1, 6)",
        "shuffle(items)",
        "random.seed(1)",
        "random.Random()",
        "h = time.localtime()",
        "trio.to_thread.run_sync(f)",
    }
    report = "\n".join(str(f) for f in check_source(SNIPPET, "snippet.py"))
    assert "snippet.py:14: time.time (a wall-clock read" in report, "each finding names its file and line"


def test_clock_ok_covers_a_marked_wall_clock_read_but_never_a_thread_or_global_randomness():
    marked = "\n".join(
        [
            "import time, random, threading",
            "t = time.monotonic()  # clock-ok",
            "random.random()  # clock-ok",
            "threading.Thread()  # clock-ok",
        ]
    )
    assert [(f.line, f.what.split()[0]) for f in check_source(marked)] == [(3, "random.random"), (4, "threading.Thread")]


def test_a_config_edit_whose_anchor_is_missing_fails_naming_the_file_and_the_anchor(tmp_path):
    path = tmp_path / "fabric.toml"
    path.write_text('streams = 2\nbandwidth = "50MB"\n')
    edit_config(path, "streams = 2", "streams = 3")
    assert path.read_text() == 'streams = 3\nbandwidth = "50MB"\n'
    with pytest.raises(AssertionError, match=rf"{re.escape(str(path))}: expected 1 of 'streams = 2' to edit, found 0"):
        edit_config(path, "streams = 2", "streams = 4")
    with pytest.raises(AssertionError, match="expected 2 of 'streams = 3'"):
        edit_config(path, "streams = 3", "streams = 4", count=2)
    assert path.read_text() == 'streams = 3\nbandwidth = "50MB"\n', "a failed edit writes nothing"
