"""The output bias starts at the label prior: the best constant model under the training loss itself."""

from __future__ import annotations

import numpy as np
import pytest

from ich_edge.training import output_prior
from training_helpers import make_series


def _series(count: int = 12, num_slices: int = 6):
    rng = np.random.default_rng(3)
    return [make_series(rng, study, 0, num_slices) for study in range(count)]


def _loss_of_constant(loss, labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean loss of a model that answers ``sigmoid(logits)`` on every slice."""
    import tensorflow as tf

    probabilities = np.broadcast_to(1.0 / (1.0 + np.exp(-logits)), labels.shape).astype(np.float32)
    return float(tf.reduce_mean(loss(tf.constant(labels, tf.float32), tf.constant(probabilities))))


@pytest.mark.parametrize("positive_weight", [1.0, 3.0])
def test_the_slice_prior_is_where_the_slice_loss_of_a_constant_model_is_lowest(positive_weight):
    from ich_edge.training.train import training_loss

    series = _series()
    bias = output_prior.prior_bias(series, "slice", positive_weight)
    labels = np.stack([s.slice_labels for s in series]).astype(np.float32)  # (B, T, 6)
    loss = training_loss(positive_weight)
    best = _loss_of_constant(loss, labels, bias)
    for label in range(6):
        for step in (-0.05, 0.05):
            moved = bias.copy()
            moved[label] += step
            assert _loss_of_constant(loss, labels, moved) > best, (label, step)
    assert abs(1.0 / (1.0 + np.exp(-bias[5])) - output_prior.prior_probability(
        output_prior.label_prevalence(series, "slice"), positive_weight)[5]) < 1e-6


@pytest.mark.parametrize("pooling", ["max", "noisy-or"])
def test_the_study_prior_is_where_the_study_loss_of_a_constant_model_is_lowest(pooling):
    from ich_edge.training.train import study_loss

    series = _series(num_slices=6)
    bias = output_prior.prior_bias(series, "study", 3.0, pooling, window_slices=6)
    labels = np.stack([np.broadcast_to(s.study_labels, s.slice_labels.shape) for s in series]).astype(np.float32)
    loss = study_loss(3.0, pooling)
    best = _loss_of_constant(loss, labels, bias)
    for label in range(6):
        for step in (-0.05, 0.05):
            moved = bias.copy()
            moved[label] += step
            assert _loss_of_constant(loss, labels, moved) > best, (pooling, label, step)


def test_unknown_labels_are_left_out_and_a_label_without_positives_stays_finite():
    series = _series(count=4)
    for item in series:
        item.slice_labels[:, 0] = 0
        item.slice_labels[0, 1] = -1
    prevalence = output_prior.label_prevalence(series, "slice")
    assert prevalence[0] == 0.0
    known = np.concatenate([s.slice_labels[:, 1] for s in series])
    assert prevalence[1] == pytest.approx(known[known >= 0].mean())
    bias = output_prior.prior_bias(series, "slice", 3.0)
    assert np.isfinite(bias).all() and bias[0] < -8


@pytest.mark.parametrize("output_bias", ["prior", "zero"])
def test_training_starts_from_the_chosen_bias(tiny_cache, tmp_path, output_bias):
    """One epoch at a learning rate too small to move it: the saved bias is where training started."""
    from ich_edge.training.run import load_run
    from ich_edge.training.train import TrainConfig, train

    lines: list[str] = []
    config = TrainConfig(epochs=1, learning_rate=1e-9, output_bias=output_bias)
    train(tiny_cache.root, tmp_path / "RUN", config, log=lines.append)
    saved = load_run(tmp_path / "RUN").head.get_layer(output_prior.OUTPUT_LAYER).get_weights()[1]
    if output_bias == "zero":
        np.testing.assert_allclose(saved, 0.0, atol=1e-5)
        assert not any("output bias" in line for line in lines)
    else:
        # the training series only (not the validation ones), as the run split them
        import json

        split = json.loads((tmp_path / "RUN" / "split.json").read_text())
        train_studies = set(split["train_studies"])
        series = [s for s in tiny_cache.series() if s.study_uid in train_studies]
        np.testing.assert_allclose(saved, output_prior.prior_bias(series, "slice", config.positive_weight), atol=1e-4)
        assert any(line.startswith("output bias at the label prior") for line in lines)


def test_an_unknown_output_bias_is_refused():
    from ich_edge.errors import ConfigError
    from ich_edge.training.train import TrainConfig

    with pytest.raises(ConfigError, match="output_bias"):
        TrainConfig(output_bias="random")
