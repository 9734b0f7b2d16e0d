"""Tiny CT series written with ich_edge.dicom.write (4 slices of 32x32 unless asked).

A module of its own (not conftest.py) so that tests can import the helpers by name.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable

import numpy as np
from pydicom.dataset import Dataset

from ich_edge.dicom.write import AXIAL_ORIENTATION, SliceGeometry, build_ct_dataset, write_dataset_atomic

SERIES_UID = "1.2.826.0.1.3680043.8.498.11"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
SIZE_PX = 32


def phantom_hu(index: int, size_px: int = SIZE_PX) -> np.ndarray:
    """Integer HU: air outside, a bone ring, brain inside, a bright dot whose value is the index."""
    yy, xx = np.mgrid[:size_px, :size_px]
    radius = np.hypot(yy - size_px / 2 + 0.5, xx - size_px / 2 + 0.5) / (size_px / 2)
    hu = np.full((size_px, size_px), -1024.0)
    hu[radius < 0.9] = 1000.0
    hu[radius < 0.75] = 30.0
    hu[size_px // 2, size_px // 2] = 100.0 + index
    return hu


def write_series(
    folder: Path,
    *,
    num_slices: int = 4,
    series_uid: str = SERIES_UID,
    study_uid: str = STUDY_UID,
    spacing_mm: float = 5.0,
    orientation: tuple[float, ...] = AXIAL_ORIENTATION,
    names: list[str] | None = None,
    instance_numbers: list[int] | None = None,
    edit: Callable[[Dataset, int], None] | None = None,
    size_px: int = SIZE_PX,
    compress_rle: bool = False,
) -> list[Path]:
    """Write a series; slice k sits k * spacing_mm along the normal (bottom to top).

    Instance numbers run top to bottom by default, so they disagree with position.
    ``names`` are SOP Instance UIDs / file stems in bottom-to-top order. Returns the paths
    bottom to top.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cosines = np.array(orientation, dtype=float)
    normal = np.cross(cosines[:3], cosines[3:])
    names = names or [f"ID_{zlib.crc32(f'{series_uid}/{k}'.encode()):09x}" for k in range(num_slices)]
    instance_numbers = instance_numbers or [num_slices - k for k in range(num_slices)]
    paths = []
    for k in range(num_slices):
        position = tuple(float(v) for v in np.array([-60.0, -60.0, -20.0]) + k * spacing_mm * normal)
        ds = build_ct_dataset(
            phantom_hu(k, size_px),
            sop_instance_uid=names[k],
            series_uid=series_uid,
            study_uid=study_uid,
            geometry=SliceGeometry(position_mm=position, orientation=orientation),
            instance_number=instance_numbers[k],
            compress_rle=compress_rle,
        )
        if edit is not None:
            edit(ds, k)
        path = folder / f"{names[k]}.dcm"
        write_dataset_atomic(ds, path)
        paths.append(path)
    return paths
