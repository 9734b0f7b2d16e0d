"""TFLiteStudyModel on a tiny two-signature model built without TensorFlow (tests/tiny_app_model.py).

The tiny encoder's features are the mean of each window channel in [0, 1] and their sum, and
its classifier is ``sigmoid(W f + b)``, so every output can be checked against numpy.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ich_edge.errors import ConfigError, ModelError
from ich_edge.runtime.tflite_model import TFLiteStudyModel, from_output, takes_raw_pixels, to_input
from ich_edge.sequence import SequenceConfig, window_indices

SIZE, WINDOW, STRIDE = 16, 4, 2


def _tiny_app_model():
    spec = importlib.util.spec_from_file_location("tiny_app_model", Path(__file__).parents[1] / "tiny_app_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny = _tiny_app_model()


@pytest.fixture(scope="module", params=[True, False], ids=["uint8-io", "float-io"])
def model_file(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("tflite_model") / f"tiny_{request.param}.tflite"
    path.write_bytes(tiny.tiny_model_bytes(SIZE, WINDOW, STRIDE, quantized_io=request.param))
    return path, request.param


def _images(num_slices: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (num_slices, SIZE, SIZE, 3), dtype=np.uint8)


def _expected_features(images: np.ndarray) -> np.ndarray:
    means = images.astype(np.float64).mean(axis=(1, 2)) / 255.0
    return np.concatenate([means, means.sum(axis=1, keepdims=True)], axis=1)


def _expected_probabilities(windows: np.ndarray) -> np.ndarray:
    logits = windows.astype(np.float64) @ tiny.CLASSIFY_WEIGHTS.T.astype(np.float64) + tiny.CLASSIFY_BIAS
    return 1.0 / (1.0 + np.exp(-logits))


def test_properties(model_file):
    path, quantized = model_file
    model = TFLiteStudyModel(path, num_threads=1)
    assert model.precision == "qat-int8"
    assert model.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert model.labels[-1] == "any" and len(model.labels) == 6
    assert (model.window_slices, model.feature_dim, model.input_size_px) == (WINDOW, 4, SIZE)
    assert model.sequence == SequenceConfig(WINDOW, STRIDE)


def test_encode_handles_the_input_and_output_dtypes(model_file):
    path, quantized = model_file
    model = TFLiteStudyModel(path, num_threads=1, encode_batch=2)  # 5 slices: batches of 2, 2, 1
    images = _images(5)
    features = model.encode(images)
    assert features.dtype == np.float32 and features.shape == (5, 4)
    tolerance = tiny.FEATURE_SCALE / 2 + 1e-6 if quantized else 1e-5
    np.testing.assert_allclose(features, _expected_features(images), atol=tolerance)


def test_classify_dequantizes_probabilities(model_file):
    path, quantized = model_file
    model = TFLiteStudyModel(path, num_threads=1)
    windows = np.random.default_rng(1).uniform(0.0, 1.5, (3, WINDOW, 4)).astype(np.float32)
    probabilities = model.classify(windows)
    assert probabilities.shape == (3, WINDOW, 6) and probabilities.dtype == np.float32
    if quantized:  # features go in as int8 (scale 4/255), probabilities come out as uint8 (1/256)
        fed = np.clip(np.rint(windows / tiny.FEATURE_SCALE + tiny.FEATURE_ZERO_POINT), -128, 127)
        fed = (fed - tiny.FEATURE_ZERO_POINT) * tiny.FEATURE_SCALE
        np.testing.assert_allclose(probabilities, _expected_probabilities(fed), atol=tiny.PROBABILITY_SCALE + 1e-6)
    else:
        np.testing.assert_allclose(probabilities, _expected_probabilities(windows), atol=1e-5)


@pytest.mark.parametrize("num_slices", [3, 4, 7])
def test_predict_series_is_encode_once_windows_stitch(model_file, num_slices):
    path, _ = model_file
    model = TFLiteStudyModel(path, num_threads=1)
    images = _images(num_slices, seed=num_slices)
    features = model.encode(images)
    blank = model.encode(np.zeros((1, SIZE, SIZE, 3), np.uint8))[0]
    rows = window_indices(num_slices, model.sequence)
    windows = np.stack([[features[i] if i >= 0 else blank for i in row] for row in rows])
    outputs = model.classify(windows)
    expected = np.zeros((num_slices, 6))
    counts = np.zeros((num_slices, 1))
    for row, out in zip(rows, outputs):
        for position, i in enumerate(row):
            if i >= 0:
                expected[i] += out[position]
                counts[i] += 1
    expected /= counts
    slices = model.predict_series(images)
    np.testing.assert_allclose(slices, expected, atol=1e-6)
    np.testing.assert_allclose(model.study_probabilities(images), expected.max(axis=0), atol=1e-6)


def test_padding_uses_the_features_of_a_blank_slice(model_file, monkeypatch):
    path, _ = model_file
    model = TFLiteStudyModel(path, num_threads=1)
    sentinel = np.full(4, 7.0, np.float32)
    monkeypatch.setattr(model, "blank_features", lambda: sentinel)
    features = np.arange(12, dtype=np.float32).reshape(3, 4)
    windows = model.windows(features)  # 3 slices, window 4: one window, last slot padded
    np.testing.assert_array_equal(windows[0, :3], features)
    np.testing.assert_array_equal(windows[0, 3], sentinel)


def test_quantization_helpers():
    image_input = {"name": "image", "dtype": np.uint8, "quantization": (1 / 255, 0)}
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    np.testing.assert_array_equal(to_input(pixels / np.float32(255), image_input), pixels)  # raw pixels
    assert takes_raw_pixels(image_input)  # so encode feeds the pixels without the float round trip
    assert not takes_raw_pixels({**image_input, "quantization": (1 / 256, 0)})
    assert not takes_raw_pixels({"dtype": np.float32, "quantization": (0.0, 0)})
    int8_input = {"name": "image", "dtype": np.int8, "quantization": (1 / 255, -128)}
    np.testing.assert_array_equal(to_input(pixels / np.float32(255), int8_input), pixels.astype(np.int16) - 128)
    np.testing.assert_array_equal(to_input(np.array([-5.0, 5.0]), int8_input), [-128, 127])  # clipped
    output = {"dtype": np.uint8, "quantization": (0.5, 10)}
    np.testing.assert_array_equal(from_output(np.array([10, 12], np.uint8), output), [0.0, 1.0])
    with pytest.raises(ModelError, match="no quantization scale"):
        to_input(np.zeros(2), {"name": "x", "dtype": np.int8, "quantization": (0.0, 0)})


def test_wrong_inputs_are_refused_with_the_fix(model_file):
    path, _ = model_file
    model = TFLiteStudyModel(path, num_threads=1)
    with pytest.raises(ConfigError, match=r"uint8 window images of shape \(N, 16, 16, 3\).*Preprocess"):
        model.encode(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ConfigError, match="uint8 window images"):
        model.encode(np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(ConfigError, match=r"feature windows of shape \(W, 4, 4\)"):
        model.classify(np.zeros((1, 5, 4), np.float32))
    with pytest.raises(ConfigError, match="at least one slice"):
        model.predict_series(np.zeros((0, 16, 16, 3), np.uint8))
    with pytest.raises(ConfigError, match="encode_batch"):
        TFLiteStudyModel(path, encode_batch=0)


def _edited(data: bytes, edit) -> bytes:
    from ai_edge_litert import schema_py_generated as fb

    from ich_edge.runtime.description import embed_description, read_description

    import flatbuffers

    model = fb.ModelT.InitFromPackedBuf(data, 0)
    edit(model)
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return embed_description(bytes(builder.Output()), read_description(data))


def test_models_without_both_signatures_or_a_matching_window(tmp_path):
    path = tmp_path / "one_signature.tflite"
    path.write_bytes(_edited(tiny.tiny_model_bytes(), lambda m: setattr(m, "signatureDefs", m.signatureDefs[:1])))
    with pytest.raises(ModelError, match=r"not an ich-edge model: it lacks the signature\(s\) classify \(has: encode\)"):
        TFLiteStudyModel(path)
    path = tmp_path / "window_mismatch.tflite"
    description = tiny.default_description(SIZE, WINDOW + 2, STRIDE, "int8", None)
    path.write_bytes(tiny.tiny_model_bytes(SIZE, WINDOW, STRIDE, description=description))
    with pytest.raises(ModelError, match="sequence window_slices 6 differs from the classify input tensor's 4 slices"):
        TFLiteStudyModel(path)


def test_runs_with_tensorflow_blocked(model_file):
    path, _ = model_file
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        for name in ("tensorflow", "tf_keras", "keras"):
            sys.modules[name] = None
        from ich_edge.runtime.tflite_model import TFLiteStudyModel
        model = TFLiteStudyModel(sys.argv[1], num_threads=1)
        images = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
        print(json.dumps(model.predict_series(images).tolist()))
        """
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    in_subprocess = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
    here = TFLiteStudyModel(path, num_threads=1).predict_series(_images(5))
    np.testing.assert_allclose(in_subprocess, here, atol=1e-6)
