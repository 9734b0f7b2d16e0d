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
