"""The stateless (unrolled) head computes what the Keras head computes, for every recurrent layer form it accepts."""

from __future__ import annotations

import numpy as np
import pytest

from ich_edge.errors import ConversionError

WINDOW, FEATURES, UNITS = 6, 5, 4


def _head(layer, seed: int):
    from ich_edge.training.keras import keras

    x = keras.Input((WINDOW, FEATURES))
    y = keras.layers.Dropout(0.3)(layer(x))
    model = keras.Model(x, keras.layers.Dense(6, activation="sigmoid")(y))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _layers():
    from ich_edge.training.keras import keras

    L = keras.layers
    return {
        "bilstm": L.Bidirectional(L.LSTM(UNITS, return_sequences=True)),
        "bigru": L.Bidirectional(L.GRU(UNITS, return_sequences=True)),
        "gru_reset_before": L.GRU(UNITS, return_sequences=True, reset_after=False),
        "lstm_last_step": L.LSTM(UNITS),
        "simple_rnn": L.SimpleRNN(UNITS, return_sequences=True),
        "bilstm_sum_last_step": L.Bidirectional(L.LSTM(UNITS), merge_mode="sum"),
        "lstm_backwards": L.LSTM(UNITS, return_sequences=True, go_backwards=True),
        "bigru_ave": L.Bidirectional(L.GRU(UNITS, return_sequences=True), merge_mode="ave"),
    }


@pytest.mark.parametrize("kind", list(_layers()))
def test_unrolled_head_matches_keras(kind):
    from ich_edge.training.stateless import check_equivalent

    assert check_equivalent(_head(_layers()[kind], seed=1), WINDOW, FEATURES, atol=1e-5) <= 1e-5


def test_a_wrong_unrolling_is_caught(monkeypatch):
    """check_equivalent raises when the unrolled arithmetic differs (here: forget and input gates swapped)."""
    from ich_edge.training import stateless

    real_step = stateless._step_lstm

    def swapped_gates(z, c, cell):
        if c is None:
            return real_step(z, c, cell)
        i, f, g, o = stateless.tf.split(z, 4, axis=-1)
        return real_step(stateless.tf.concat([f, i, g, o], axis=-1), c, cell)

    monkeypatch.setattr(stateless, "_step_lstm", swapped_gates)
    with pytest.raises(ConversionError, match="differs from the Keras head"):
        stateless.check_equivalent(_head(_layers()["bilstm"], seed=2), WINDOW, FEATURES)


def test_stateful_layers_are_refused():
    from ich_edge.training.keras import keras
    from ich_edge.training.stateless import stateless_head_fn

    x = keras.Input((WINDOW, FEATURES), batch_size=1)
    head = keras.Model(x, keras.layers.LSTM(UNITS, stateful=True, return_sequences=True)(x))
    with pytest.raises(ConversionError, match="stateful=True"):
        stateless_head_fn(head, WINDOW)(np.zeros((1, WINDOW, FEATURES), np.float32))
