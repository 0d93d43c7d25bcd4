"""The fabric: every site, library, MediaAgent and link, built from one config, and
the few coordination points jobs share (role gates, throttles, locks). See core.py."""

from vtlfabric.fabric.core import Fabric, build, copy_record

__all__ = ["Fabric", "build", "copy_record"]
