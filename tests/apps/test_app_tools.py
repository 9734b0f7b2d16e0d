"""require() skips with the install command, and fails under CI=true."""

from __future__ import annotations

import pytest

from app_tools import require


def test_require_skips_with_install_command(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install it with: bash .ci/x.sh"):
        require(False, "x", "bash .ci/x.sh")


def test_require_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="under CI=true every app test must run"):
        require(False, "x", "bash .ci/x.sh")


def test_require_passes_when_available(monkeypatch):
    monkeypatch.setenv("CI", "true")
    require(True, "x", "bash .ci/x.sh")
