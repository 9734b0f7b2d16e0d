"""Fixtures for the DICOM tests; the series writer lives in dicom_helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from dicom_helpers import write_series


@pytest.fixture
def series_dir(tmp_path) -> Path:
    """A folder with one 4-slice 32x32 CT series in RSNA conventions."""
    folder = tmp_path / "series"
    write_series(folder)
    return folder
