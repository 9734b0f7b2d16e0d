"""Suite-wide hooks: the closing list of app tests that could not run (see tests/apps/app_tools.py)."""

from __future__ import annotations

import sys
from pathlib import Path

# The checkout's scripts (scripts/demo.py, scripts/summary.py) are not in the installed
# package; their tests import them by name from here.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def pytest_terminal_summary(terminalreporter):
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "app test not run" in reason:
            terminalreporter.write_line(f"{report.nodeid}: {reason.removeprefix('Skipped: ')}")
