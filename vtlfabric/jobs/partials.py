"""The temporary names restore writes objects under, and the ones a killed restore left.

An object is written as ``.<pid>-<thread>.vtlfabric-partial`` beside its own name and
renamed into place once whole. A restore killed mid-object (``kill -9``, a crash)
leaves that file behind. The next restore into the same directory removes it, but only
once the process that named it is gone: a restore still running in another process
keeps its own, and so does a file whose pid the system has since given to another
process. (Names without a pid, ``.<thread>.vtlfabric-partial``, come from the
release before this one, whose restores are gone by now.)
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

SUFFIX = ".vtlfabric-partial"
_NAME = re.compile(r"\.(?:(?P<pid>\d+)-)?\d+" + re.escape(SUFFIX))


def partial_name(target: Path) -> Path:
    """Where this thread writes ``target`` until it is whole."""
    return target.with_name(f".{os.getpid()}-{threading.get_native_id()}{SUFFIX}")


def remove_stale(directory: Path) -> list[Path]:
    """Remove the partial files in ``directory`` whose process is gone; returns them."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    removed = []
    for entry in entries:
        found = _NAME.fullmatch(entry.name)
        if found is None or entry.is_dir(follow_symlinks=False) or _alive(found["pid"]):
            continue
        try:
            os.unlink(entry.path)  # a link is removed, never followed
        except FileNotFoundError:  # another restore removed it first
            continue
        removed.append(Path(entry.path))
    return removed


def _alive(pid: str | None) -> bool:
    if pid is None:
        return False
    if int(pid) == os.getpid():
        return True  # another thread of ours is writing it now
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
