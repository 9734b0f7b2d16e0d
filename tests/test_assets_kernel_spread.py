"""The on-device bounds of the golden sample come from every kernel set measured, and a file
whose spread could flip a golden-sample decision is refused (``ich_edge.assets.sample.kernel_spread``).

The kernel sets are stubbed (``_other_kernels``): the rule is tested here, the runtimes in
tests/apps/test_runtime_matrix_aarch64.py.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ich_edge import LABELS
from ich_edge.assets import sample
from ich_edge.errors import GateFailedError

MODEL = SimpleNamespace(path=Path("cnn_lstm_dynamic.tflite"), precision="dynamic")


def _golden(study_any: float) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.full((4, len(LABELS)), 0.1, np.float32)
    probabilities[2, -1] = study_any
    return probabilities, np.zeros((4, 8), np.float32)


def _stub(monkeypatch, outputs: dict) -> None:
    monkeypatch.setattr(sample, "_other_kernels", lambda *args: (outputs, []))


def test_bounds_cover_the_widest_runtime_features_included(monkeypatch):
    expected, features = _golden(0.9)
    _stub(monkeypatch, {
        "x86_64 builtin": (expected, features),
        "aarch64 ai-edge-litert 1.4.0": (expected + np.float32(3.4e-4), features + np.float32(5.8e-3)),
    })
    bounds = sample.kernel_spread(MODEL, Path("."), None, expected, features, {"any": 0.5}, list(LABELS))
    assert bounds["measured_max_abs_difference"]["aarch64 ai-edge-litert 1.4.0"] == pytest.approx(3.4e-4, rel=1e-3)
    assert bounds["probabilities_abs"] == pytest.approx(6.8e-4)
    assert bounds["features_abs"] == pytest.approx(1.2e-2)  # 2 x 5.8e-3, rounded up to two digits


def test_a_probability_within_the_spread_of_its_threshold_is_refused_with_the_numbers(monkeypatch):
    expected, features = _golden(0.5002)
    _stub(monkeypatch, {"aarch64 ai-edge-litert 1.4.0": (expected + np.float32(3.4e-4), features)})
    with pytest.raises(GateFailedError) as caught:
        sample.kernel_spread(MODEL, Path("."), None, expected, features, {"any": 0.5}, list(LABELS))
    message = str(caught.value)
    assert "refused for apps" in message and "3.40e-04" in message and "any 0.500200 vs threshold 0.500000" in message


def test_a_decision_that_flips_on_another_runtime_is_refused(monkeypatch):
    expected, features = _golden(0.49)
    moved = expected.copy()
    moved[2, -1] = 0.51
    _stub(monkeypatch, {"aarch64 ai-edge-litert 2.3.0": (moved, features)})
    with pytest.raises(GateFailedError, match=r"flipped any \(aarch64 ai-edge-litert 2.3.0: 0.510000\)"):
        sample.kernel_spread(MODEL, Path("."), None, expected, features, {"any": 0.5}, list(LABELS))


def test_a_sample_within_the_spread_is_replaced_by_the_next_study_and_listed(monkeypatch, tmp_path):
    """The spread belongs to the file, the closeness to a threshold to the sample: assets tries the next
    positive study (up to ``max_samples``) and the manifest lists the refused ones."""
    tried = []

    def make(model, sample_dir, seed, config):
        tried.append(seed)
        sample_dir.mkdir()
        if seed < 5:
            raise sample.SampleNearThresholdError(f"seed {seed}: any 0.500200 vs threshold 0.500000", seed + 1)
        return {"synth_command": f"seed {seed}"}

    monkeypatch.setattr(sample, "make_sample", make)
    made = sample.make_sample_within_spread(MODEL, tmp_path / "sample", 1, sample.SampleConfig())
    assert tried == [1, 3, 5] and made["synth_command"] == "seed 5"  # each retry starts after the seed used
    assert [r["seed"] for r in made["samples_refused"]] == [2, 4] and "0.500200" in made["samples_refused"][0]["why"]

    tried.clear()
    with pytest.raises(GateFailedError, match=r"on each of 2 sample studies \(synth seeds 1, 3\).*seed 0: any 0.500200"):
        sample.make_sample_within_spread(MODEL, tmp_path / "again", 0, sample.SampleConfig(max_samples=2))
    assert tried == [0, 2] and not (tmp_path / "again").exists()  # nothing half-written
