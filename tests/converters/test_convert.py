"""``ich-edge convert`` on a tiny float RUN_DIR: every float-run precision converted once (module fixture)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ich_edge import LABELS
from ich_edge.cli import main
from ich_edge.errors import ConversionError, OutputExistsError
from ich_edge.runtime.description import op_summary, read_description, sidecar_path

FLOAT_RUN_PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "int8-mixed")


@pytest.fixture(scope="module")
def converted(tiny_data, tmp_path_factory):
    cache, series, run = tiny_data
    out = tmp_path_factory.mktemp("converted")
    code = main(["convert", "--model", str(run), "--precision", "all", "--data", str(cache), "--out", str(out)])
    assert code == 0
    return {name: out / f"cnn_lstm_{name}.tflite" for name in FLOAT_RUN_PRECISIONS}


def test_one_file_and_sidecar_per_precision(converted):
    for precision, path in converted.items():
        assert path.is_file() and sidecar_path(path).is_file()
        assert path.stat().st_mode & 0o777 == 0o644 == sidecar_path(path).stat().st_mode & 0o777
        description = read_description(path)
        assert description == json.loads(sidecar_path(path).read_text())
        assert description["precision"] == precision
    leftovers = [p.name for p in next(iter(converted.values())).parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_description_fields(converted, tiny_data):
    _, _, run = tiny_data
    description = read_description(converted["int8"])
    assert description["format"] == "ich-edge-model/1"
    assert description["labels"] == list(LABELS)
    assert description["thresholds"] == json.loads((run / "thresholds.json").read_text())
    assert description["sequence"]["window_slices"] == 4 and "stitch_rule" in description["sequence"]
    pre = description["preprocessing"]
    assert pre["input_size_px"] == 32 and pre["windows_hu"][0] == [40.0, 80.0]
    assert {"value_scaling", "slice_order", "hu", "order_of_ops"} <= set(pre)
    assert description["calibration"]["windows"] >= 1 and description["calibration"]["slices"] >= 4
    assert description["source_run"]["quantized"] is False
    # The file leaves the machine: no path of it inside, the source run named by its model's digest.
    assert not re.search(r'"(/|[A-Za-z]:\\\\)[^"]*"', json.dumps(description)), json.dumps(description)[:300]
    assert description["source_run"]["path"] == run.name
    assert description["source_run"]["model_sha256"] == hashlib.sha256((run / "model.keras").read_bytes()).hexdigest()
    assert description["created_by"].startswith("ich-edge ")
    encode = description["signatures"]["encode"]
    assert encode["inputs"][0]["shape"] == [-1, 32, 32, 3] and encode["outputs"][0]["shape"] == [-1, 8]
    assert description["signatures"]["classify"]["outputs"][0]["shape"] == [1, 4, 6]
    classify_ops = description["quantized_ops"]["classify"]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in classify_ops  # unrolled, stateless
    assert classify_ops["FULLY_CONNECTED"]["integer"] == classify_ops["FULLY_CONNECTED"]["count"] > 0
    assert "stateless" in description["sequence"]["state"]


def test_op_summaries(converted):
    for precision, path in converted.items():
        summary = op_summary(path)
        classify = summary["classify"]["ops"]
        # unrolled over the 4-slice window: the input projection of every step in one
        # FULLY_CONNECTED per direction (2; no BATCH_MATMUL, which XNNPACK refuses in integer
        # files), then one recurrent FULLY_CONNECTED per direction and later step (2 x 3), and
        # the output Dense
        assert "BATCH_MATMUL" not in classify, precision
        assert classify["FULLY_CONNECTED"]["count"] == 9, precision
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in classify and "WHILE" not in classify, precision
        assert "MUL" not in summary["encode"]["ops"], precision  # BatchNormalization folded
        assert summary["encode"]["ops"]["ADD"]["count"] == 4, precision  # the residual additions only
    int8 = op_summary(converted["int8"])
    for op, entry in int8["encode"]["ops"].items():
        assert entry["float"] == 0 and entry["hybrid"] == 0, ("encode", op)
    for op in ("FULLY_CONNECTED", "LOGISTIC", "TANH", "MUL", "ADD"):
        entry = int8["classify"]["ops"][op]
        assert entry["integer"] == entry["count"], op
    assert "int8" in int8["classify"]["ops"]["FULLY_CONNECTED"]["weight_dtypes"]
    assert "float32" not in int8["encode"]["weight_bytes"] and "float32" not in int8["classify"]["weight_bytes"]
    fp16 = op_summary(converted["fp16"])
    assert fp16["encode"]["ops"]["DEQUANTIZE"]["weight_dtypes"] == ["float16"]
    assert op_summary(converted["fp32"])["classify"]["ops"]["FULLY_CONNECTED"]["float"] == 9


def test_int8_classify_matmuls_all_run_on_xnnpack(converted):
    """Every matmul of the int8 ``classify`` is taken by XNNPACK (an integer BATCH_MATMUL would not be)."""
    from ich_edge.runtime.coverage import xnnpack_coverage

    left = xnnpack_coverage(Path(converted["int8"]).read_bytes())["classify"].not_delegated
    assert "FULLY_CONNECTED" not in left and "BATCH_MATMUL" not in left, left


def test_no_precision_keeps_state_between_invocations(converted):
    """No variable tensors anywhere, and one window run twice on one interpreter gives identical outputs."""
    from ich_edge.runtime.interpreter import make_interpreter

    for precision, path in converted.items():
        summary = op_summary(path)
        assert {sig: info["variable_tensors"] for sig, info in summary.items()} == {"encode": 0, "classify": 0}, precision
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in summary["classify"]["ops"], precision
        runner = make_interpreter(str(path), num_threads=1).get_signature_runner("classify")
        window = np.random.default_rng(1).uniform(0, 3, (1, 4, 8)).astype(np.float32)
        name = next(iter(runner.get_input_details()))
        first = {k: v.copy() for k, v in runner(**{name: window}).items()}
        second = runner(**{name: window})
        for key in first:  # the fused LSTM gave outputs 0.023 apart here on the demo model
            np.testing.assert_array_equal(first[key], second[key], err_msg=precision)


def test_windows_do_not_share_lstm_state(converted):
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    model = TFLiteStudyModel(converted["fp32"], num_threads=1)
    rng = np.random.default_rng(0)
    first, other = rng.uniform(0, 3, (2, 1, 4, 8)).astype(np.float32)
    alone = model.classify(first)
    model.classify(other)
    np.testing.assert_array_equal(model.classify(np.concatenate([other, first]))[1], alone[0])
    np.testing.assert_array_equal(model.classify(first), alone)


def test_every_precision_runs_without_tensorflow_and_matches_keras(converted, tiny_data):
    cache, series, run = tiny_data
    study = series[3]  # 5 slices: two overlapping windows
    images_path = Path(converted["fp32"]).parent / "study.npy"
    np.save(images_path, study.images)
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        for name in ("tensorflow", "tf_keras", "keras"):
            sys.modules[name] = None
        from ich_edge.runtime.tflite_model import TFLiteStudyModel
        images = np.load(sys.argv[1])
        out = {}
        for path in sys.argv[2:]:
            model = TFLiteStudyModel(path, num_threads=1)
            out[model.precision] = model.predict_series(images).tolist()
        print(json.dumps(out))
        """
    )
    args = [sys.executable, "-c", script, str(images_path), *map(str, converted.values())]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    tflite = {k: np.array(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    assert sorted(tflite) == sorted(FLOAT_RUN_PRECISIONS)

    from ich_edge.training.evaluate import predict_series
    from ich_edge.training.run import load_run

    reference = load_run(run)
    keras_probabilities = predict_series(reference.encoder, reference.head, study.images, reference.sequence_config)
    diff = {k: float(np.abs(v - keras_probabilities).max()) for k, v in tflite.items()}
    assert diff["fp32"] <= 1e-4, diff
    assert diff["fp16"] <= 5e-3, diff
    assert diff["dynamic"] <= 0.05 and diff["int8"] <= 0.1, diff


def test_existing_files_are_not_overwritten_without_force(converted, tiny_data, capsys):
    cache, _, run = tiny_data
    out = converted["fp32"].parent
    before = converted["fp32"].read_bytes()
    code = main(["convert", "--model", str(run), "--precision", "fp32", "--out", str(out)])
    assert code != 0
    assert "cnn_lstm_fp32.tflite exists (file); add --force" in capsys.readouterr().err
    assert converted["fp32"].read_bytes() == before


def test_write_model_is_atomic_and_respects_force(converted, tmp_path, monkeypatch):
    from converters import convert as export
    from ich_edge import fileio

    data = converted["fp32"].read_bytes()
    target = tmp_path / "cnn_lstm_fp32.tflite"
    export.write_model(target, data, {"precision": "fp32"})
    with pytest.raises(OutputExistsError, match="add --force"):
        export.write_model(target, data, {"precision": "again"})
    export.write_model(target, data, {"precision": "forced"}, force=True)
    assert read_description(target) == {"precision": "forced"}

    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the sidecar is in place, the model fails: a crash mid-write
            raise OSError("disk full")
        return real_replace(src, dst)

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    monkeypatch.setattr(fileio.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        export.write_model(fresh / "m.tflite", data, {"precision": "x"})
    assert list(fresh.iterdir()) == []  # no temp files, and no model without its sidecar
    monkeypatch.setattr(fileio.os, "replace", real_replace)


def test_a_failed_conversion_leaves_nothing(tiny_data, tmp_path, monkeypatch):
    from converters import convert as export

    cache, _, run = tiny_data

    def fail(*args, **kwargs):
        raise ConversionError("fp32 conversion failed: simulated")

    monkeypatch.setattr(export, "save_deployable", lambda *args, **kwargs: tmp_path / "unused")
    monkeypatch.setattr(export, "run_converter", fail)
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match="simulated"):
        export.convert_runs([run], None, out, export.ConvertConfig(precisions=("fp32",)))
    assert not out.exists() or list(out.iterdir()) == []


def test_graph_checks_name_the_problem():
    from converters.graph import check_graph
    from ich_edge.training.keras import keras

    image = keras.Input((8, 8, 3))
    plain = keras.Model(image, keras.layers.GlobalAveragePooling2D()(image))
    x = keras.layers.Conv2D(4, 3, use_bias=False)(image)
    x = keras.layers.BatchNormalization()(x)
    with_bn = keras.Model(image, keras.layers.GlobalAveragePooling2D()(x))

    def summary(encode_ops, classify_ops, variables=0):
        return {"encode": {"ops": encode_ops, "variable_tensors": 0},
                "classify": {"ops": classify_ops, "variable_tensors": variables}}

    unrolled = {"BATCH_MATMUL": {"count": 2}, "LOGISTIC": {"count": 8}}
    check_graph(summary({"MEAN": {"count": 1}}, unrolled), with_bn)
    with pytest.raises(ConversionError, match=r"non-builtin ops \['CUSTOM:FlexStringSplit'\]"):
        check_graph(summary({"CUSTOM:FlexStringSplit": {"count": 1}}, unrolled), with_bn)
    with pytest.raises(ConversionError, match=r"keeps state in variable tensors \{'classify': 4\}"):
        check_graph(summary({}, {"UNIDIRECTIONAL_SEQUENCE_LSTM": {"count": 2}}, variables=4), with_bn)
    with pytest.raises(ConversionError, match="BatchNormalization was not folded"):
        check_graph(summary({"MUL": {"count": 3}}, unrolled), with_bn)
    check_graph(summary({"MUL": {"count": 3}}, unrolled), plain)  # no BN: a MUL is the model's own


def test_option_errors_come_before_any_work(tiny_data, tmp_path, capsys):
    cache, _, run = tiny_data
    cases = [
        (["--precision", "int9"], "did you mean 'int8'"),
        (["--precision", "qat-int8", "--data", str(cache)], "converts a QAT_DIR"),
        (["--precision", "int8"], "need calibration data: pass --data CACHE"),
        (["--precision", "fp16", "--io", "int8"], "fp16 has float weights and activations, so it has no int8 I/O"),
    ]
    for extra, message in cases:
        code = main(["convert", "--model", str(run), "--out", str(tmp_path / "out"), *extra])
        assert code == 2, extra
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_training_data_origin_is_read_from_the_prepare_report(tmp_path):
    from converters.describe import is_synthetic

    def cache_from(dicom_dir: Path) -> Path:
        cache = tmp_path / f"cache_{dicom_dir.parent.name}_{dicom_dir.name}"
        (cache / "problems").mkdir(parents=True)
        (cache / "problems" / "0-of-1.json").write_text(json.dumps({"dicom_dir": str(dicom_dir)}))
        return cache

    synth = tmp_path / "synth_out"  # ich-edge synth --out synth_out: synth_config.json beside dicom/
    (synth / "dicom").mkdir(parents=True)
    (synth / "synth_config.json").write_text("{}")
    assert is_synthetic(cache_from(synth / "dicom")) is True
    assert is_synthetic(cache_from(synth)) is True
    hospital = tmp_path / "hospital" / "dicom"
    hospital.mkdir(parents=True)
    assert is_synthetic(cache_from(hospital)) is False
    assert is_synthetic(tmp_path / "no_reports") is None


def test_a_gru_head_converts_in_every_float_run_precision(tiny_data, make_run, tmp_path):
    """The unrolled GRU has no while loop, so int8 calibrates (TF 2.21's calibrator crashed on the fused one)."""
    from ich_edge.runtime.tflite_model import TFLiteStudyModel
    from ich_edge.training.run import load_run

    cache, series, _ = tiny_data
    run = make_run(tmp_path / "gru_run", series, rnn="gru")
    code = main(["convert", "--model", str(run), "--precision", "all", "--data", str(cache), "--out", str(tmp_path / "b")])
    assert code == 0
    written = sorted(p.name for p in (tmp_path / "b").glob("*.tflite"))
    assert written == sorted(f"cnn_lstm_{p}.tflite" for p in ("dynamic", "fp16", "fp32", "int8", "int8-mixed"))
    description = read_description(tmp_path / "b" / "cnn_lstm_fp32.tflite")
    assert description["source_run"]["model"]["rnn"] == "gru"
    loaded = load_run(run)
    model = TFLiteStudyModel(tmp_path / "b" / "cnn_lstm_fp32.tflite")
    features = np.random.default_rng(0).normal(0, 1, (2, 4, 8)).astype(np.float32)
    expected = loaded.head(features, training=False).numpy()
    assert np.abs(model.classify(features) - expected).max() < 1e-5


def test_compiled_model_reproduces_the_interpreter(converted, tiny_data):
    """LiteRT's CompiledModel takes every precision as it is (no variable tensors) and agrees with the Interpreter."""
    from ich_edge.runtime.compiled import CompiledRuntimeStudyModel
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    _, series, _ = tiny_data
    images = np.concatenate([series[3].images, series[5].images])  # 5 + 6 slices: overlapping windows
    for precision, path in converted.items():
        interpreter = TFLiteStudyModel(path, num_threads=1).predict_series(images)
        got = CompiledRuntimeStudyModel(path, num_threads=1).predict_series(images)
        bound = 1e-5 if precision == "fp32" else 1.0 / 64  # integer kernels may round one step apart
        assert np.abs(got - interpreter).max() <= bound, precision


def test_predict_runs_on_the_compiled_runtime(converted, tiny_data, tmp_path, capsys):
    from ich_edge.runtime.predict import load_model

    _, series, _ = tiny_data
    model = load_model(converted["fp32"], num_threads=1, runtime="compiled")
    assert type(model).__name__ == "CompiledRuntimeStudyModel"
    reference = load_model(converted["fp32"], num_threads=1)
    np.testing.assert_allclose(model.predict_series(series[4].images), reference.predict_series(series[4].images), atol=1e-5)
    with pytest.raises(Exception, match="runtime must be one of"):
        load_model(converted["fp32"], runtime="gpu-please")


def test_an_fp32_file_that_differs_from_keras_is_not_written_and_the_part_is_named(tiny_data):
    """convert's verification runs padded, all-air and extreme windows; a wrong head is named, not warned about."""
    from converters.graph import run_converter, save_deployable
    from converters.recipe import ConvertOptions
    from converters.registry import select_recipes
    from converters.verify import verify_fp32
    from ich_edge.training.run import load_run

    _, _, run_dir = tiny_data
    run = load_run(run_dir)
    fp32 = [r for r in select_recipes(("fp32",), True, False) if r.name == "fp32"][0]
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        saved = save_deployable(run.encoder, run.head, run.sequence_config.window_slices, Path(scratch) / "sm")
        tflite_bytes = run_converter(saved, fp32, ConvertOptions())
    assert verify_fp32(tflite_bytes, run) <= 1e-5
    dense = [l for l in run.head.layers if l.__class__.__name__ in ("Dense", "TimeDistributed")][-1]
    weights = dense.get_weights()
    dense.set_weights([w + 0.01 for w in weights])
    with pytest.raises(ConversionError, match=r"first disagreement: classify"):
        verify_fp32(tflite_bytes, run)


def test_bn_after_an_activation_is_accepted_as_one_multiply_add():
    """Conv(relu) -> BN cannot fold: the check allows its MUL and ADD, and only those."""
    from converters.graph import check_graph, unfoldable_batch_norms
    from ich_edge.training.keras import keras

    image = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(image)
    x = keras.layers.BatchNormalization()(x)  # after the activation: kept as x * a + b
    x = keras.layers.Conv2D(4, 3)(x)
    x = keras.layers.BatchNormalization()(x)  # after a linear conv: folded
    encoder = keras.Model(image, keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x)))
    assert unfoldable_batch_norms(encoder) == 1

    def summary(encode_ops):
        return {"encode": {"ops": encode_ops, "variable_tensors": 0}, "classify": {"ops": {}, "variable_tensors": 0}}

    check_graph(summary({"MUL": {"count": 1}, "ADD": {"count": 1}}), encoder)
    with pytest.raises(ConversionError, match="BatchNormalization was not folded"):
        check_graph(summary({"MUL": {"count": 2}, "ADD": {"count": 2}}), encoder)
