"""Shared fixtures: small synthetic sets (64 px, few slices) written once per session."""

from __future__ import annotations

import numpy as np
import pytest

from ich_edge.synth import SynthConfig, plan_study, write_synth_set

SMALL = dict(matrix_px=64, slices_min=20, slices_max=60, workers=1)


@pytest.fixture(scope="session")
def small_config() -> SynthConfig:
    return SynthConfig(studies=4, seed=3, **SMALL)


@pytest.fixture(scope="session")
def small_set(tmp_path_factory, small_config):
    """(folder, records) of a 4-study set at 64 px."""
    out = tmp_path_factory.mktemp("synth_small")
    records = write_synth_set(small_config, out)
    return out, records


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
