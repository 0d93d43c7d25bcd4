"""What a restore must produce, rebuilt from the clients' own workloads, and what it did."""

from __future__ import annotations

from pathlib import Path

from vtlfabric import config as config_mod
from vtlfabric.site.client import Workload


def restored_files(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def workload_of(config: Path, client: str) -> Workload:
    return Workload(config_mod.load(config).client(client))


def subclient_files(workload: Workload, subclient: str, generation: int, since: int | None = None) -> dict[Path, bytes]:
    """A subclient's objects at ``generation`` (only those changed after ``since``), by restore path."""
    return {
        Path(subclient) / o.path.lstrip("/"): workload.content(o) for o in workload.objects(subclient, generation, since=since)
    }


def job_files(
    workload: Workload, subclient: str, job_type: str, generation: int, base_generation: int | None
) -> dict[Path, bytes]:
    """What restoring one job gives: all objects for a full, what changed since its base otherwise."""
    return subclient_files(workload, subclient, generation, None if job_type == "full" else base_generation)


def expected_files(fabric, client: str, generation_of: dict[str, int]) -> dict[Path, bytes]:
    """A point-in-time restore: every object of each subclient as it stood at that
    subclient's newest backup."""
    workload = fabric.workloads[client]
    return {path: data for sub, gen in generation_of.items() for path, data in subclient_files(workload, sub, gen).items()}
