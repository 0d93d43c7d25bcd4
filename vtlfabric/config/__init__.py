"""TOML config -> frozen attrs specs.

Every error is one ``ConfigError`` naming the file and the dotted key. The parts:
``specs`` (what a config is; a leaf any layer may import), ``reader`` (typed access
to TOML), ``sites`` and ``sections``/``policies`` (one parser per file section),
``checks`` (rules across files) and ``loader`` (the order they run in).
"""

from __future__ import annotations

from vtlfabric.config.loader import load, load_daemon
from vtlfabric.config.reader import ConfigError
from vtlfabric.config.sites import barcode_range, load_site
from vtlfabric.config.specs import (
    COPY_KINDS,
    DRILL_MODES,
    EVERY_UNITS,
    FREQUENCIES,
    SCHEDULE_ACTIONS,
    WEEKDAYS,
    ClientSpec,
    CopySpec,
    DaemonSpec,
    DrillSpec,
    EncryptionSpec,
    FabricConfig,
    LibrarySpec,
    LinkSpec,
    MediaAgentSpec,
    MetricsSpec,
    PolicySpec,
    ScheduleSpec,
    SelectionRules,
    SiteSpec,
    SubclientSpec,
)
from vtlfabric.vocab import AEADS, DEFAULT_AEAD, DEFAULT_KEM, JOB_TYPES, KEMS  # re-exported: config was their home before vocab

__all__ = [
    "AEADS",
    "COPY_KINDS",
    "DEFAULT_AEAD",
    "DEFAULT_KEM",
    "DRILL_MODES",
    "EVERY_UNITS",
    "FREQUENCIES",
    "JOB_TYPES",
    "KEMS",
    "SCHEDULE_ACTIONS",
    "WEEKDAYS",
    "ClientSpec",
    "ConfigError",
    "CopySpec",
    "DaemonSpec",
    "DrillSpec",
    "EncryptionSpec",
    "FabricConfig",
    "LibrarySpec",
    "LinkSpec",
    "MediaAgentSpec",
    "MetricsSpec",
    "PolicySpec",
    "ScheduleSpec",
    "SelectionRules",
    "SiteSpec",
    "SubclientSpec",
    "barcode_range",
    "load",
    "load_daemon",
    "load_site",
]
