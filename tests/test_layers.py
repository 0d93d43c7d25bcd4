"""Imports run downward only, as DESIGN.md draws the rooms: a module imports its own
room, a lower room, or a leaf. Checked here on the AST, so the picture is not just claimed.

Imports under ``if TYPE_CHECKING:`` are annotations, not dependencies, and are skipped.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "vtlfabric"
# Import nothing of ours but each other.
LEAVES = {"errors", "vocab", "units", "groups", "tojson", "media", "blocking", "ahead", "bytequeue", "files", "report"}
RANK = {
    "catalog": 1,
    "config": 1,
    "tape": 2,
    "net": 2,
    "sim": 2,
    "check": 3,
    "site": 3,
    "fabric": 4,
    "jobs": 5,
    "service": 6,
    "scenario": 7,
    "cliformat": 8,
    "clitape": 8,
    "cliscenario": 8,
    "clicheck": 8,
    "cli": 9,
}


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "vtlfabric" and len(parts) > 1 else None


def _runtime_imports(tree: ast.Module) -> list[tuple[int, str]]:
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "vtlfabric" else [node.module]
            found += [(node.lineno, n) for n in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


def upward_imports(package: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(package.rglob("*.py")):
        me = _room(".".join(path.relative_to(package.parent).with_suffix("").parts))
        for line, module in _runtime_imports(ast.parse(path.read_text())):
            other = _room(module)
            if other is None or other == me or other in LEAVES:
                continue
            if me in LEAVES or me not in RANK or other not in RANK or RANK[other] >= RANK[me]:
                bad.append(f"{path.relative_to(package.parent)}:{line}: {me} imports {module}")
    return bad


def test_imports_run_downward_only():
    assert upward_imports() == []


def test_the_checker_sees_an_upward_import(tmp_path):
    package = tmp_path / "vtlfabric"
    (package / "catalog").mkdir(parents=True)
    (package / "catalog" / "bad.py").write_text("from vtlfabric.jobs import backup\nfrom vtlfabric import vocab\n")
    (package / "tape").mkdir()
    (package / "tape" / "ok.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from vtlfabric.fabric import Fabric\n"
    )
    assert upward_imports(package) == ["vtlfabric/catalog/bad.py:1: catalog imports vtlfabric.jobs"]
