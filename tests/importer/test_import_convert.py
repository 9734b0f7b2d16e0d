"""Imported runs convert in every precision; the fp32 file matches the ORIGINAL model within 1e-5."""

from __future__ import annotations

import numpy as np
import pytest

from import_helpers import SIZE_PX, paper_like, write_cache
from ich_edge.training.importer import ImportConfig, import_model


@pytest.mark.parametrize("return_sequences", [True, False], ids=["per-slice-head", "per-window-head"])
def test_imported_paper_layout_converts_and_fp32_matches_the_original(tmp_path, return_sequences):
    from ich_edge.ingest.cache import Cache
    from ich_edge.runtime.tflite_model import TFLiteStudyModel
    from ich_edge.training.evaluate import predict_series
    from converters.convert import ConvertConfig, convert_runs
    from ich_edge.training.parity import load_reference

    cache = write_cache(tmp_path / "cache", studies=4)
    paper_like(return_sequences=return_sequences).save(tmp_path / "m.h5")
    import_model(tmp_path / "m.h5", tmp_path / "run", ImportConfig(input_scale="symmetric"), data=cache,
                 log=lambda line: None)
    results = convert_runs([tmp_path / "run"], cache, tmp_path / "tfl", ConvertConfig(precisions=("all",),
                           calibration_windows=4), log=lambda line: None)
    assert {r["precision"] for r in results} == {"fp32", "fp16", "dynamic", "int8"}
    model = TFLiteStudyModel(tmp_path / "tfl" / "cnn_lstm_fp32.tflite")
    assert model.description["model_input"] == {"scale": "symmetric", "channels": ["brain", "subdural", "bone"]}
    assert model.description["imported_from"]["format"] == "h5"
    reference = load_reference(tmp_path / "run")
    for series in Cache.open(cache).load_all():
        expected = predict_series(reference.encoder, reference.head, series.images, reference.sequence_config)
        assert np.abs(model.predict_series(series.images) - expected).max() <= 1e-5
    int8 = TFLiteStudyModel(tmp_path / "tfl" / "cnn_lstm_int8.tflite")
    assert int8.predict_series(series.images).shape == (series.num_slices, 6)
