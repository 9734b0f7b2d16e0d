"""QAT of an imported encoder (unsupported layers named and left float) and parity's reference being the original file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from import_helpers import SIZE_PX, WINDOW, write_cache
from ich_edge.errors import ModelError
from ich_edge.training.importer import import_model


def _model_with_elu():
    from ich_edge.training.keras import keras

    keras.utils.set_random_seed(0)
    td = keras.layers.TimeDistributed
    return keras.Sequential([
        keras.Input((WINDOW, SIZE_PX, SIZE_PX, 3)),
        td(keras.layers.Conv2D(4, 3, strides=2), name="td_conv"), td(keras.layers.ELU(), name="td_elu"),
        td(keras.layers.MaxPooling2D(2)), td(keras.layers.Flatten()),
        keras.layers.LSTM(4, return_sequences=True), keras.layers.Dense(6, activation="sigmoid"),
    ])


def test_qat_of_an_imported_run_names_the_float_layers_and_reloads(tmp_path):
    from ich_edge.training.qat import QatConfig, load_any_run, qat

    cache = write_cache(tmp_path / "cache")
    _model_with_elu().save(tmp_path / "m.h5")
    import_model(tmp_path / "m.h5", tmp_path / "run", log=lambda line: None)
    lines = []
    qat(tmp_path / "run", cache, tmp_path / "qat", QatConfig(epochs=1, batch_size=2), log=lines.append)
    config = json.loads((tmp_path / "qat" / "config.json").read_text())
    assert config["qat"]["float_layers"] == ["elu"]
    assert any("left in float" in line and "elu" in line for line in lines)
    run = load_any_run(tmp_path / "qat")
    wrapped = [type(l).__name__ for l in run.encoder.layers]
    assert "QuantizeWrapperV2" in wrapped and "ELU" in wrapped
    assert (tmp_path / "qat" / "split.json").is_file()


def test_parity_reference_is_the_original_file_and_refuses_a_changed_one(tmp_path):
    from ich_edge.training.evaluate import predict_series
    from ich_edge.training.parity import load_reference

    model = _model_with_elu()
    model.save(tmp_path / "m.h5")
    import_model(tmp_path / "m.h5", tmp_path / "run", log=lambda line: None)
    reference = load_reference(tmp_path / "run")
    images = np.random.default_rng(0).integers(0, 255, (WINDOW, SIZE_PX, SIZE_PX, 3), dtype=np.uint8)
    expected = np.asarray(model(images[None].astype(np.float32) / 255.0, training=False))[0]
    got = predict_series(reference.encoder, reference.head, images, reference.sequence_config)
    assert np.abs(got - expected).max() <= 1e-6
    model.layers[-1].set_weights([w + 1.0 for w in model.layers[-1].get_weights()])
    model.save(tmp_path / "m.h5")
    with pytest.raises(ModelError, match="changed since it was imported"):
        load_reference(tmp_path / "run")
