"""Early stopping waits for ``min_epochs``: a model still at the label prior is not stopped."""

from __future__ import annotations

import pytest

from ich_edge.errors import ConfigError
from ich_edge.training.keras import keras, tf
from ich_edge.training.train import EpochEnd, TrainConfig, load_state

#: Validation losses of the demo model with seed 1 before the fix: best at epoch 3, then six
#: noisy epochs above it while the model was finding the lesions, then the fall.
SEED1_VAL_LOSS = [0.649, 0.512, 0.497, 0.511, 0.512, 0.667, 0.513, 0.754, 0.633, 0.41, 0.30, 0.25, 0.22]


def _stopping_epoch(config: TrainConfig, val_losses, tmp_path) -> int | None:
    """Drive the per-epoch callback with these validation losses; the epoch it stops at."""
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    state = load_state(tmp_path, {}, resume=False)
    callback = EpochEnd(tf.distribute.get_strategy(), tmp_path, True, tf.train.Checkpoint(model=model), state,
                        config, lambda step: 1e-3, log=lambda line: None)
    callback.set_model(model)
    for epoch, val_loss in enumerate(val_losses):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {"loss": val_loss, "val_loss": val_loss})
        if model.stop_training:
            assert state["stopped"] == "early stopping"
            return epoch + 1
    return None


def test_default_floor_is_half_the_epochs_so_a_slow_start_survives(tmp_path):
    # Without the floor (min_epochs=1) patience 6 ends this run at epoch 9 on the epoch-3 weights.
    assert _stopping_epoch(TrainConfig(epochs=24, patience=6, min_epochs=1), SEED1_VAL_LOSS, tmp_path / "a") == 9
    assert TrainConfig(epochs=24).early_stopping_from == 12
    assert _stopping_epoch(TrainConfig(epochs=24, patience=6), SEED1_VAL_LOSS, tmp_path / "b") is None


def test_stops_after_the_floor_once_patience_runs_out(tmp_path):
    flat = [0.5] + [0.6] * 11
    assert _stopping_epoch(TrainConfig(epochs=12, patience=2, min_epochs=8), flat, tmp_path) == 8


def test_min_epochs_must_be_positive():
    with pytest.raises(ConfigError, match="min_epochs must be >= 1"):
        TrainConfig(min_epochs=0)
