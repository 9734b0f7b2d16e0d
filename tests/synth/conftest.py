"""Shared fixtures: small synthetic sets (64 px, few slices) written once per session."""

from __future__ import annotations

import pytest
from synth_helpers import SMALL

from ich_edge.synth import SynthConfig, write_synth_set


@pytest.fixture(scope="session")
def small_config() -> SynthConfig:
    return SynthConfig(studies=4, seed=3, **SMALL)


@pytest.fixture(scope="session")
def small_set(tmp_path_factory, small_config):
    """(folder, records) of a 4-study set at 64 px."""
    out = tmp_path_factory.mktemp("synth_small")
    records = write_synth_set(small_config, out)
    return out, records
