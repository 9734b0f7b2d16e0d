"""The trivial baseline: unit behaviour and the honesty check on phantom studies."""

from __future__ import annotations

import numpy as np
import pytest

from ich_edge import LABELS
from ich_edge.baseline import (
    baseline_slice_scores,
    cache_to_hu,
    hu_channel,
    slice_scores_from_hu,
)
from ich_edge.errors import ConfigError
from ich_edge.metrics import roc_auc
from ich_edge.sequence import study_probabilities
from ich_edge.transforms import Preprocess, PreprocessConfig


def _head(size: int = 64, blob_hu: float | None = None) -> np.ndarray:
    """A skull ring (1000 HU) around 30 HU brain, air outside, optionally a 9x9 blob."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    hu = np.full((size, size), -1000.0, np.float32)
    hu[r < 0.45 * size] = 1000.0
    hu[r < 0.40 * size] = 30.0
    if blob_hu is not None:
        hu[28:37, 28:37] = blob_hu
    return hu


def test_default_channel_is_the_subdural_window():
    config = PreprocessConfig()
    assert config.window_names[hu_channel(config)] == "subdural"
    narrow = PreprocessConfig(windows_hu=((40, 80), (40, 80), (600, 2800)))
    assert hu_channel(narrow) == 2  # only the bone window covers -20..150 HU
    with pytest.raises(ConfigError, match="needs a window covering"):
        hu_channel(PreprocessConfig(windows_hu=((40, 80), (40, 80), (40, 80))))


def test_cache_round_trip_recovers_hu():
    hu = np.linspace(-20.0, 180.0, 128 * 128, dtype=np.float32).reshape(128, 128)
    images = Preprocess(PreprocessConfig())(hu)[None]
    back = cache_to_hu(images, PreprocessConfig())[0]
    assert np.abs(back - hu).max() <= 200.0 / 255.0 / 2 + 1e-4
    with pytest.raises(ConfigError, match="expected uint8 images"):
        cache_to_hu(images[0], PreprocessConfig())


def test_slice_score_is_the_dense_fraction_of_the_brain():
    clean, bleed = _head(), _head(blob_hu=70.0)
    scores = slice_scores_from_hu(np.stack([clean, bleed]))
    assert scores[0] == 0.0
    brain = ((bleed >= 0) & (bleed <= 100)).sum()
    assert scores[1] == pytest.approx(81 / (brain - 2 * 2 * np.pi * 0.40 * 64), rel=0.15)
    too_dense = slice_scores_from_hu(_head(blob_hu=120.0))  # calcification-like: not blood
    assert too_dense[0] == 0.0
    tiny = np.full((64, 64), -1000.0, np.float32)
    tiny[30:33, 30:33] = 70.0
    assert slice_scores_from_hu(tiny)[0] == 0.0  # too little brain to score


def _study_score(images: np.ndarray, config: PreprocessConfig) -> float:
    """The baseline's study score: the study rule (max over slices) on its slice scores."""
    return float(study_probabilities(baseline_slice_scores(images, config)[:, None])[0])


def test_the_cache_path_scores_the_bleed_slice():
    slices = [_head(256), _head(256, blob_hu=None)]
    slices[1][100:140, 100:140] = 65.0
    config = PreprocessConfig()
    images = Preprocess(config).volume(slices)
    from_cache = baseline_slice_scores(images, config)
    assert from_cache[0] == 0.0 and from_cache[1] > 0.05 and _study_score(images, config) == pytest.approx(from_cache[1])


def _phantom_baseline_aucs(studies: int, seed: int) -> tuple[np.ndarray, dict]:
    """Study labels and the baseline's study-level AUC per label on freshly rendered phantoms (128 px)."""
    from ich_edge.synth import SynthConfig, plan_study, render_slice

    config = SynthConfig(studies=studies, seed=seed, matrix_px=128, workers=1)
    preprocess = Preprocess(PreprocessConfig())
    labels, scores = [], []
    for index in range(config.studies):
        plan = plan_study(config, index)
        rendered = [render_slice(plan, k) for k in range(plan.num_slices)]
        labels.append(np.max([r.labels for r in rendered], axis=0))
        scores.append(_study_score(preprocess.volume([r.hu for r in rendered]), PreprocessConfig()))
    labels, scores = np.array(labels), np.array(scores)
    return labels, {name: roc_auc(labels[:, i], scores) for i, name in enumerate(LABELS)}


def test_baseline_does_not_separate_phantom_studies():
    """Honesty check: density alone must not solve the phantom.

    20 studies (seed 21, generated at 128 px, scored through the prepared-cache path). The trained CNN-LSTM must reach study-level AUC >= 0.95 for "any"; a density
    rule at >= 0.85 would mean the phantom's bleeds are told apart by brightness rather than
    by shape and place. With 10 positives and 10 negatives the AUC's standard error is about
    0.1, so the bar is a guard against a phantom that became trivial, not a measurement; the
    measured values on 200 full-size studies are in the generator's report (about 0.7).
    """
    labels, aucs = _phantom_baseline_aucs(studies=20, seed=21)
    print("baseline study-level AUC:", {k: round(v, 3) for k, v in aucs.items()})
    assert 5 <= labels[:, -1].sum() <= 15
    assert aucs["any"] < 0.85


@pytest.mark.slow
def test_baseline_per_subtype_on_a_larger_set():
    """120 studies (seed 22, 128 px): "any" below 0.80 and every subtype below 0.85.

    The trained model's targets are 0.95 ("any") and 0.90 (each subtype). On 200 full-size
    studies (seed 0) the generator's report measured 0.63 for "any" and 0.50 to 0.74 per subtype.
    """
    _, aucs = _phantom_baseline_aucs(studies=120, seed=22)
    print("baseline study-level AUC (120 studies):", {k: round(v, 3) for k, v in aucs.items()})
    assert aucs["any"] < 0.80
    assert all(aucs[name] < 0.85 for name in LABELS[:-1])
