"""A round-head HU slice that the tiny test model reads as positive or negative (shared by the predict tests)."""

from __future__ import annotations

import numpy as np


def round_head_hu(bright: bool, size: int = 32) -> np.ndarray:
    """A round head: 30 HU brain in a 1000 HU skull; ``bright`` fills the brain with 75 HU (positive)."""
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2 + 0.5, xx - size / 2 + 0.5)
    hu = np.full((size, size), -1000.0)
    hu[radius < size * 0.45] = 1000.0
    hu[radius < size * 0.4] = 75.0 if bright else 30.0
    return hu
