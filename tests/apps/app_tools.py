"""What app tests share: :func:`require` for the tools they need (kotlinc, Chromium, npm packages).

Where a tool is missing the test is skipped with one line naming it and the command that
installs it (``tests/conftest.py`` lists every app test that could not run at the end of
the run). Under ``CI=true`` a missing tool fails the test instead: CI provisions every tool
(``.ci/run``), so a skip there would hide an app that no longer compiles or runs.
"""

from __future__ import annotations

import os

import pytest

APP_SKIP_PREFIX = "app test not run"


def require(available: bool, what: str, install: str) -> None:
    """Skip (or, under CI=true, fail) the calling test unless ``available``.

    Parameters
    ----------
    available : whether the tool was found.
    what : the missing tool, e.g. ``"kotlinc (npm package kotlin-compiler)"``.
    install : the command that installs it, e.g. ``"bash .ci/provision-kotlin.sh"``.
    """
    if available:
        return
    message = f"{APP_SKIP_PREFIX}: needs {what}; install it with: {install}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"under CI=true every app test must run ({message})", pytrace=False)
    pytest.skip(message)
