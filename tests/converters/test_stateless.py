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


def _with_prefix(layer, seed: int):
    """A head with per-slice layers before the recurrent one (they move into encode with the projection)."""
    from ich_edge.training.keras import keras

    x = keras.Input((WINDOW, FEATURES))
    y = keras.layers.Dense(7, activation="relu")(keras.layers.Dropout(0.2)(x))
    y = keras.layers.TimeDistributed(keras.layers.Dense(6, activation="tanh"))(y)
    model = keras.Model(x, keras.layers.Dense(6, activation="sigmoid")(layer(y)))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _projected_vs_keras(head) -> float:
    from ich_edge.training.projection import encode_tail, head_split
    from ich_edge.training.stateless import stateless_head_fn

    split = head_split(head, FEATURES, "always")
    assert split.projected
    window = np.random.default_rng(4).normal(0.0, 1.0, (1, WINDOW, FEATURES)).astype(np.float32)
    projected = np.asarray(encode_tail(split)(window[0]))  # what encode gives, slice by slice
    assert projected.shape == (WINDOW, split.classify_dim)
    got = np.asarray(stateless_head_fn(head, WINDOW, split)(projected[None]))
    expected = np.asarray(head(window, training=False))
    if expected.ndim == 2:
        expected = np.repeat(expected[:, None], WINDOW, axis=1)
    return float(np.abs(got - expected).max())


@pytest.mark.parametrize("kind", list(_layers()))
def test_with_the_input_projection_in_encode_the_head_gives_what_keras_gives(kind):
    assert _projected_vs_keras(_head(_layers()[kind], seed=3)) <= 1e-5
    assert _projected_vs_keras(_with_prefix(_layers()[kind], seed=5)) <= 1e-5


def test_a_projection_without_its_input_bias_is_caught(monkeypatch):
    """The comparison above fails when encode forgets the recurrent layer's input bias."""
    from ich_edge.training import projection

    real = projection._input_kernel_and_bias
    monkeypatch.setattr(projection, "_input_kernel_and_bias", lambda direction: (real(direction)[0], None))
    assert _projected_vs_keras(_head(_layers()["bilstm"], seed=3)) > 1e-3


def test_auto_projects_only_a_wide_encoder_and_says_why():
    from ich_edge.training.keras import keras
    from ich_edge.training.projection import head_split

    narrow = head_split(_head(_layers()["bilstm"], seed=1), FEATURES)  # 5 features, 2 x 4 x 4 = 32 gate inputs
    assert not narrow.projected and narrow.classify_dim == FEATURES and "32 gate inputs" in narrow.reason
    x = keras.Input((WINDOW, 200))
    wide = head_split(keras.Model(x, keras.layers.LSTM(UNITS, return_sequences=True)(x)), 200)
    assert wide.projected and wide.classify_dim == 4 * UNITS and wide.to_dict()["kind"] == "projected"
    assert not head_split(keras.Model(x, keras.layers.LSTM(UNITS, return_sequences=True)(x)), 200, "never").projected


def test_a_layer_across_slices_before_the_recurrent_one_keeps_the_projection_in_classify():
    from ich_edge.training.keras import keras
    from ich_edge.training.projection import head_split

    x = keras.Input((WINDOW, 200))
    head = keras.Model(x, keras.layers.LSTM(UNITS, return_sequences=True)(keras.layers.Conv1D(8, 3, padding="same")(x)))
    split = head_split(head, 200)
    assert not split.projected and "Conv1D" in split.reason
    with pytest.raises(ConversionError, match="not per-slice"):
        head_split(head, 200, "always")
