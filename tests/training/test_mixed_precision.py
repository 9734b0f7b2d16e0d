"""Mixed precision: one training step on CPU with the mixed_float16 policy gives a finite loss."""

from __future__ import annotations

import numpy as np

from training_helpers import make_series
from ich_edge.training import data
from ich_edge.training.keras import keras, tf
from ich_edge.training.model import ModelConfig, build_model
from ich_edge.training.train import TrainConfig, compile_for_training, precision_policy


def test_one_mixed_precision_step_has_a_finite_loss_and_float32_outputs():
    rng = np.random.default_rng(0)
    series = [make_series(rng, s, 0, 4) for s in range(4)]
    dataset, steps = data.train_dataset(series, 4, 2, seed=0)
    config = TrainConfig(batch_size=2, mixed_precision=True)
    model_config = ModelConfig(width=0.25, feature_dim=8, rnn_units=4, input_size_px=32)
    with precision_policy(config.mixed_precision):
        encoder, _, model = build_model(model_config, 4)
        train_model, optimizer, _ = compile_for_training(model, config, steps, 4, 32, "slice")
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after building
    assert encoder.get_layer("stem_conv").compute_dtype == "float16"
    assert model.get_layer("sequence_head").get_layer("probabilities").compute_dtype == "float32"
    assert isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
    inputs, labels, weights = next(iter(dataset))
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss = train_model.train_on_batch(inputs, labels, sample_weight=weights)
    assert np.isfinite(loss) and loss > 0
    assert all(w.dtype == tf.float32 for w in model.weights)  # float32 variables: the export stays float32
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    _, _, export = build_model(model_config, 4)  # the export copy is built under the float32 policy
    export.set_weights(model.get_weights())
    assert export.get_layer("encode_slices").layer.get_layer("stem_conv").compute_dtype == "float32"
