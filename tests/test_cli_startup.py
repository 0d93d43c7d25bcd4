"""`vtlfabric ctl` is a new process each call (scripts, tests and cron make many), so it
must not load the daemon: no Trio, no structlog, no cryptography."""

from __future__ import annotations

import subprocess
import sys

CHECK = "import sys, vtlfabric.cli; print(' '.join(m for m in ('trio', 'structlog', 'cryptography', 'sqlite3') if m in sys.modules))"


def test_ctl_loads_none_of_the_daemons_modules():
    loaded = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_ctl_help_still_lists_every_fault():
    out = subprocess.run([sys.executable, "-m", "vtlfabric.cli", "ctl", "--help"], capture_output=True, text=True, check=True).stdout
    assert "fault" in out
    out = subprocess.run([sys.executable, "-m", "vtlfabric.cli", "ctl", "fault", "--help"], capture_output=True, text=True, check=True).stdout
    for words in ("library:SITE/NAME offline|online", "cartridge:BARCODE fail|repair", "mediaagent:SITE"):
        assert words in " ".join(out.split()), words
