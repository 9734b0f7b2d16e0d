"""The training loss is the RSNA weighted log loss ("any" x2) over the valid positions only."""

from __future__ import annotations

import numpy as np
import pytest

from ich_edge.metrics import rsna_log_loss
from ich_edge.training.data import _normalize_weights
from ich_edge.training.keras import keras, tf
from ich_edge.training.train import rsna_weighted_bce


def test_loss_equals_rsna_log_loss_on_valid_positions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (3, 5, 6)).astype(np.float32)
    p = rng.uniform(0.01, 0.99, (3, 5, 6)).astype(np.float32)
    w = np.ones((3, 5), np.float32)
    w[0, 3:] = 0  # padding
    w[2, 4] = 0
    _, _, w_norm = _normalize_weights(tf.zeros(1), y, tf.constant(w))
    # Keras' compiled loss, as in training: an identity model whose "predictions" are p.
    inputs = keras.Input((5, 6))
    model = keras.Model(inputs, keras.layers.Activation("linear")(inputs))
    model.compile(loss=rsna_weighted_bce, weighted_metrics=[])
    keras_value = model.evaluate(p, y, sample_weight=w_norm.numpy(), batch_size=3, verbose=0)
    valid = w.astype(bool)
    expected = rsna_log_loss(y[valid], p[valid])
    assert keras_value == pytest.approx(expected, rel=1e-5)


def test_any_counts_twice():
    y = np.zeros((1, 1, 6), np.float32)
    p_any = np.full((1, 1, 6), 0.01, np.float32)
    p_any[..., 5] = 0.9  # wrong on "any" only
    p_sub = np.full((1, 1, 6), 0.01, np.float32)
    p_sub[..., 0] = 0.9  # wrong on one subtype only
    excess_any = float(rsna_weighted_bce(y, p_any)[0, 0]) - float(rsna_weighted_bce(y, np.full((1, 1, 6), 0.01, np.float32))[0, 0])
    excess_sub = float(rsna_weighted_bce(y, p_sub)[0, 0]) - float(rsna_weighted_bce(y, np.full((1, 1, 6), 0.01, np.float32))[0, 0])
    assert excess_any == pytest.approx(2 * excess_sub, rel=1e-5)
    assert excess_sub == pytest.approx((-np.log(0.1) + np.log(0.99)) / 7, rel=1e-4)


def test_positive_weight_scales_only_the_positive_term():
    from ich_edge.training.train import training_loss

    assert training_loss(1.0) is rsna_weighted_bce
    weighted = training_loss(3.0)
    y = np.zeros((1, 2, 6), np.float32)
    y[0, 0] = 1.0  # first position all positive, second all negative
    p = np.full((1, 2, 6), 0.3, np.float32)
    plain, heavy = rsna_weighted_bce(y, p).numpy(), weighted(y, p).numpy()
    assert heavy[0, 0] == pytest.approx(3 * plain[0, 0], rel=1e-5)
    assert heavy[0, 1] == pytest.approx(plain[0, 1], rel=1e-5)


def test_train_config_rejects_bad_positive_weight():
    from ich_edge.errors import ConfigError
    from ich_edge.training.train import TrainConfig

    with pytest.raises(ConfigError, match="positive_weight"):
        TrainConfig(positive_weight=0.5)


def test_the_loss_of_a_label_subset_is_the_rsna_log_loss_over_those_labels():
    from ich_edge.training.train import study_loss, training_loss

    labels = ("intraparenchymal", "any")
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (4, 3, 2)).astype(np.float32)
    p = rng.uniform(0.01, 0.99, (4, 3, 2)).astype(np.float32)
    got = np.asarray(training_loss(1.0, labels)(y, p))
    assert got.shape == (4, 3)
    assert float(got.mean()) == pytest.approx(rsna_log_loss(y.reshape(-1, 2), p.reshape(-1, 2), labels=labels), rel=1e-5)
    study = np.asarray(study_loss(1.0, labels=labels)(y, p))
    assert float(study.mean()) == pytest.approx(rsna_log_loss(y.max(axis=1), p.max(axis=1), labels=labels), rel=1e-5)
    assert training_loss(1.0) is rsna_weighted_bce
