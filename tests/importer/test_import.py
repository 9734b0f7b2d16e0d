"""ich-edge import: formats, shapes, labels, input scaling; the RUN_DIR converts and matches the original."""

from __future__ import annotations

import json

import numpy as np
import pytest

from import_helpers import SIZE_PX, WINDOW, paper_like, write_cache, write_keras3
from ich_edge import LABELS
from ich_edge.errors import ConfigError, ModelError
from ich_edge.training.importer import ImportConfig, import_model
from ich_edge.transforms import ModelInput, PreprocessConfig


def _windows(n=2, window=WINDOW, seed=1):
    return np.random.default_rng(seed).uniform(0, 1, (n, window, SIZE_PX, SIZE_PX, 3)).astype(np.float32)


def _canonical(run_dir, unit):
    from ich_edge.training.run import load_run

    run = load_run(run_dir)
    return np.asarray(run.model(unit, training=False)), run


def test_h5_window_model_splits_into_encoder_and_head_with_the_same_outputs(tmp_path):
    model = paper_like()
    model.save(tmp_path / "paper.h5")
    unit = _windows()
    expected = np.asarray(model(unit, training=False))
    config = import_model(tmp_path / "paper.h5", tmp_path / "run", log=lambda line: None)
    got, run = _canonical(tmp_path / "run", unit)
    assert np.abs(got - expected).max() <= 1e-6
    assert [l.name for l in run.encoder.layers[1:]] == ["conv2d", "conv2d_1", "max_pooling2d", "flatten"] or \
        len(run.encoder.layers) == 5
    assert config["import"]["format"] == "h5" and len(config["import"]["sha256"]) == 64
    assert config["sequence"]["window_slices"] == WINDOW and config["model"]["rnn"] == "lstm"
    thresholds = json.loads((tmp_path / "run" / "thresholds.json").read_text())
    assert set(thresholds["study"]) == set(LABELS)


def test_per_window_head_gives_every_slice_the_window_vector(tmp_path):
    model = paper_like(return_sequences=False)
    model.save(tmp_path / "window.h5")
    unit = _windows()
    expected = np.asarray(model(unit, training=False))  # (B, 6)
    import_model(tmp_path / "window.h5", tmp_path / "run", log=lambda line: None)
    got, run = _canonical(tmp_path / "run", unit)
    assert got.shape == (2, WINDOW, 6)
    assert np.abs(got - expected[:, None, :]).max() <= 1e-6
    assert run.head.output_shape == (None, WINDOW, 6)


def test_labels_in_another_order_are_mapped_to_ich_edge_order(tmp_path):
    model = paper_like()
    model.save(tmp_path / "m.h5")
    order = ("any", "subdural", "subarachnoid", "intraventricular", "intraparenchymal", "epidural")
    unit = _windows()
    expected = np.asarray(model(unit, training=False))
    config = import_model(tmp_path / "m.h5", tmp_path / "run", ImportConfig(labels=order), log=lambda line: None)
    got, _ = _canonical(tmp_path / "run", unit)
    assert np.abs(got - expected[..., ::-1]).max() <= 1e-6
    assert config["import"]["file_labels"] == list(order) and config["labels"] == list(LABELS)


def test_symmetric_single_channel_input_is_mapped_inside_the_encoder(tmp_path):
    model = paper_like(channels=1)
    model.save(tmp_path / "m.h5")
    unit = _windows()
    model_input = ModelInput("symmetric", ("brain",))
    expected = np.asarray(model(model_input(unit, PreprocessConfig(input_size_px=SIZE_PX)), training=False))
    config = import_model(tmp_path / "m.h5", tmp_path / "run", ImportConfig(input_scale="symmetric", channels=("brain",)),
                          log=lambda line: None)
    got, run = _canonical(tmp_path / "run", unit)
    assert np.abs(got - expected).max() <= 1e-5
    assert run.encoder.input_shape == (None, SIZE_PX, SIZE_PX, 3) and run.encoder.layers[1].name == "input_adapter"
    assert config["model_input"] == {"scale": "symmetric", "channels": ["brain"]}


def test_model_input_hu_reconstructs_each_windows_hounsfield_range():
    pre = PreprocessConfig(input_size_px=SIZE_PX)
    x = np.array([[0.0, 0.5, 1.0]], np.float32)
    assert np.allclose(ModelInput("hu", ("brain", "subdural", "bone"))(x, pre), [[0.0, 80.0, 2000.0]])
    assert np.allclose(ModelInput("symmetric", ("bone",))(x, pre), [[1.0]])
    with pytest.raises(ConfigError, match="input scale"):
        ModelInput("zscore")


def test_per_slice_model_becomes_encoder_plus_dense_head(tmp_path):
    from ich_edge.training.keras import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((SIZE_PX, SIZE_PX, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(6, activation="sigmoid")])
    model.save(tmp_path / "slice.h5")
    unit = _windows(window=3)
    expected = np.asarray(model(unit.reshape(-1, SIZE_PX, SIZE_PX, 3))).reshape(2, 3, 6)
    config = import_model(tmp_path / "slice.h5", tmp_path / "run", ImportConfig(window_slices=3), log=lambda line: None)
    got, run = _canonical(tmp_path / "run", unit)
    assert np.abs(got - expected).max() <= 1e-6
    assert config["import"]["kind"] == "slice" and config["model"]["rnn"] == "none"
    assert run.encoder.output_shape == (None, 4)


def test_tf_keras_savedmodel_folder_imports(tmp_path):
    model = paper_like()
    model.save(tmp_path / "saved", save_format="tf")
    unit = _windows()
    expected = np.asarray(model(unit, training=False))
    config = import_model(tmp_path / "saved", tmp_path / "run", log=lambda line: None)
    got, _ = _canonical(tmp_path / "run", unit)
    assert config["import"]["format"] == "savedmodel" and np.abs(got - expected).max() <= 1e-6


KERAS3_FUNCTIONAL = """
td = keras.layers.TimeDistributed
inp = keras.Input((32, 32, 3)); a = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inp)
a = keras.layers.BatchNormalization()(a); a = keras.layers.ReLU()(a)
b = keras.layers.DepthwiseConv2D(3, padding="same")(a); b = keras.layers.Add()([a, b])
c = keras.layers.SeparableConv2D(8, 3, strides=2, activation="relu")(b)
c = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(c), keras.layers.GlobalMaxPooling2D()(c)])
encoder = keras.Model(inp, c, name="enc")
win = keras.Input((None, 32, 32, 3))
x = td(encoder, name="td")(win)
x = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))(x)
x = keras.layers.SimpleRNN(4, return_sequences=True)(x)
x = keras.layers.Dense(6, activation="sigmoid")(x)
model = keras.Model(win, x)
for v in model.weights:
    if "moving" in v.path:
        v.assign(np.random.default_rng(1).uniform(0.5, 1.5, v.shape).astype("float32"))
"""


def test_keras3_file_is_rebuilt_in_tf_keras_within_1e5_of_keras3(tmp_path):
    from ich_edge.training.evaluate import predict_series
    from ich_edge.training.parity import load_reference
    from ich_edge.training.run import load_run

    path = write_keras3(tmp_path / "k3.keras", KERAS3_FUNCTIONAL)
    config = import_model(path, tmp_path / "run", ImportConfig(window_slices=WINDOW), log=lambda line: None)
    assert config["import"]["format"] == "keras3" and config["import"]["keras_version"].startswith("3.")
    assert config["import"]["rebuild_max_abs_diff"] <= 1e-5
    images = np.random.default_rng(0).integers(0, 255, (6, SIZE_PX, SIZE_PX, 3), dtype=np.uint8)
    original = load_reference(tmp_path / "run")  # Keras 3 in a child process
    rebuilt = load_run(tmp_path / "run")
    a = predict_series(original.encoder, original.head, images, original.sequence_config)
    b = predict_series(rebuilt.encoder, rebuilt.head, images, rebuilt.sequence_config)
    assert np.abs(a - b).max() <= 1e-5


def test_softmax_is_refused_unless_labels_and_softmax_ok(tmp_path):
    paper_like(activation="softmax").save(tmp_path / "soft.h5")
    with pytest.raises(ConfigError, match="not exclusive"):
        import_model(tmp_path / "soft.h5", tmp_path / "run", log=lambda line: None)
    assert not (tmp_path / "run").exists()
    config = import_model(tmp_path / "soft.h5", tmp_path / "run", ImportConfig(labels=LABELS, softmax_ok=True),
                          log=lambda line: None)
    assert config["import"]["output_activation"] == "softmax"


def test_bad_inputs_give_one_clear_error_and_write_nothing(tmp_path):
    from ich_edge.training.keras import keras

    (tmp_path / "notes.h5").write_text("not a model")
    with pytest.raises(ModelError, match="not a Keras model"):
        import_model(tmp_path / "notes.h5", tmp_path / "run", log=lambda line: None)
    conv3d = keras.Sequential([keras.Input((WINDOW, SIZE_PX, SIZE_PX, 3)), keras.layers.Conv3D(4, 3, name="c3d"),
                               keras.layers.Reshape((2, -1)), keras.layers.Dense(6, activation="sigmoid")])
    conv3d.save(tmp_path / "c3d.h5")
    with pytest.raises(ModelError, match=r"'c3d' \(Conv3D\) is a Conv3D"):
        import_model(tmp_path / "c3d.h5", tmp_path / "run", log=lambda line: None)
    flat = keras.Sequential([keras.Input((10, 12)), keras.layers.Dense(6, activation="sigmoid")])
    flat.save(tmp_path / "rank3.h5")
    with pytest.raises(ModelError, match=r"input shape \(None, 10, 12\)"):
        import_model(tmp_path / "rank3.h5", tmp_path / "run", log=lambda line: None)
    paper_like().save(tmp_path / "paper.h5")
    cache64 = write_cache(tmp_path / "cache64", size_px=64, studies=2)
    with pytest.raises(ConfigError, match="32 px slices but the cache was prepared at 64 px"):
        import_model(tmp_path / "paper.h5", tmp_path / "run", data=cache64, log=lambda line: None)
    assert not (tmp_path / "run").exists()


def test_custom_layer_without_code_is_named(tmp_path):
    from ich_edge.training.keras import keras

    @keras.saving.register_keras_serializable(package="user")
    class Scale(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    model = keras.Sequential([keras.Input((WINDOW, SIZE_PX, SIZE_PX, 3)),
                              keras.layers.TimeDistributed(keras.layers.Flatten()), Scale(),
                              keras.layers.Dense(6, activation="sigmoid")])
    model.save(tmp_path / "custom.h5")
    keras.saving.get_custom_objects().clear()
    with pytest.raises(ModelError, match="custom layer"):
        import_model(tmp_path / "custom.h5", tmp_path / "run", log=lambda line: None)


def test_cli_import_exit_codes(tmp_path):
    from ich_edge.cli import main

    paper_like().save(tmp_path / "paper.h5")
    assert main(["import", "--model", str(tmp_path / "paper.h5"), "--out", str(tmp_path / "run")]) == 0
    assert main(["import", "--model", str(tmp_path / "paper.h5"), "--out", str(tmp_path / "run")]) != 0  # exists (3 under the exit-code contract)
    (tmp_path / "x.h5").write_text("x")
    assert main(["import", "--model", str(tmp_path / "x.h5"), "--out", str(tmp_path / "run2")]) != 0
    assert not (tmp_path / "run2").exists()
