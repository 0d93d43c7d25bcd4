"""What a WAN link is, as the config describes it: the spec lives with the other specs
in ``config.specs`` (loading a config, as every ``ctl`` call does, needs no Trio); it is
re-exported here for the link model and its tests."""

from __future__ import annotations

from vtlfabric.config.specs import LinkSpec

__all__ = ["KiB", "LinkSpec", "MiB"]

MiB = 2**20
KiB = 2**10
