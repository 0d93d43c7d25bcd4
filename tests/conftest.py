"""Fixtures and the hypothesis profile. What tests share otherwise lives in tests/helpers.py."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.helpers import open_fabric, write_fabric
from vtlfabric.fabric import Fabric

# CI replays the same examples every run (a red CI must be reproducible); a developer's
# `make test` explores new ones each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def fabric_files(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """The test fabric's files; parametrize indirectly with the production site's settings."""
    return write_fabric(tmp_path / "fabric", prod=getattr(request, "param", None))


@pytest.fixture
async def fabric(fabric_files: Path) -> AsyncIterator[Fabric]:
    """An in-process fabric. Tests that use it ask for ``autojump_clock`` themselves:
    pytest-trio only sees a clock the test function requests directly."""
    async with open_fabric(fabric_files) as fab:
        yield fab
