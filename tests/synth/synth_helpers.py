"""Helpers shared by the synth tests (a uniquely named module: conftest files are not importable)."""

from __future__ import annotations

import numpy as np

from ich_edge.synth import SynthConfig, plan_study

SMALL = dict(matrix_px=64, slices_min=20, slices_max=60, workers=1)


def find_study(config: SynthConfig, subtype: str, max_search: int = 300, where=None) -> int:
    """Index of the first study whose plan has a lesion of ``subtype`` (and ``where(lesion)``)."""
    for index in range(max_search):
        plan = plan_study(config, index)
        if any(lesion.subtype == subtype and (where is None or where(lesion)) for lesion in plan.lesions):
            return index
    raise AssertionError(f"no {subtype} study in the first {max_search} plans")


def dilate(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    out = mask.copy()
    for _ in range(steps):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out
