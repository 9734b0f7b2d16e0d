"""``ich-edge qat`` for one epoch on the tiny RUN_DIR, then ``convert --precision qat-int8`` (module fixture)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ich_edge.cli import main
from ich_edge.runtime.description import op_summary, read_description


@pytest.fixture(scope="module")
def qat_dir(tiny_data, tmp_path_factory):
    cache, _, run = tiny_data
    out = tmp_path_factory.mktemp("qat") / "qat_dir"
    assert main(["qat", "--model", str(run), "--data", str(cache), "--out", str(out), "--epochs", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def qat_run(qat_dir):
    from ich_edge.training.qat import load_any_run

    return load_any_run(qat_dir)  # rebuilt from config.json, weights from model.keras


@pytest.fixture(scope="module")
def qat_tflite(qat_dir, tiny_data, tmp_path_factory):
    cache, _, _ = tiny_data
    out = tmp_path_factory.mktemp("qat_tflite")
    code = main(["convert", "--model", str(qat_dir), "--precision", "all", "--data", str(cache), "--out", str(out), "--io", "int8"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["cnn_lstm_qat-int8.tflite", "cnn_lstm_qat-int8.tflite.json",
                                                     "cnn_lstm_qat-int8.tflite.layers.json"]  # the per-layer report
    return out / "cnn_lstm_qat-int8.tflite"


def test_qat_dir_has_the_run_layout(qat_dir, tiny_data):
    _, _, run = tiny_data
    for name in ("config.json", "split.json", "model.keras", "thresholds.json", "history.json", "report.json", "report.md"):
        assert (qat_dir / name).is_file(), name
    config = json.loads((qat_dir / "config.json").read_text())
    float_config = json.loads((run / "config.json").read_text())
    assert config["quantized"] is True and float_config["quantized"] is False
    assert config["qat"]["epochs"] == 1
    assert config["qat"]["learning_rate"] == pytest.approx(float_config["train"]["learning_rate"] / 100)
    assert config["model"] == float_config["model"] and config["sequence"] == float_config["sequence"]
    assert json.loads((qat_dir / "split.json").read_text()) == json.loads((run / "split.json").read_text())


def test_report_puts_float_and_qat_side_by_side(qat_dir):
    report = json.loads((qat_dir / "report.json").read_text())
    assert report["validation"]["model"]["study"]["n"] == report["float_validation"]["model"]["study"]["n"] == 4
    thresholds = json.loads((qat_dir / "thresholds.json").read_text())
    rules = report["threshold_rules"]
    assert rules["used"] == "agreement" and set(rules) == {"used", "agreement", "specificity"}
    assert thresholds["study"] == rules["agreement"]["thresholds"]  # re-chosen for QAT, to agree with the float model
    assert rules["specificity"]["thresholds"] == report["validation"]["model"]["study"]["threshold_at_specificity"]
    split = json.loads((qat_dir / "split.json").read_text())  # agreement needs no labels: fitted on train + validation
    assert rules["agreement"]["fitted_on"] == "training and validation studies"
    assert rules["agreement"]["fitted_on_studies"] == len(split["train_studies"]) + len(split["val_studies"])
    markdown = (qat_dir / "report.md").read_text()
    assert "| label | float study AUC | QAT study AUC |" in markdown
    assert "# ich-edge training report" in markdown


def test_qat_dir_loads_with_fake_quant(qat_dir, qat_run, tiny_data):
    from ich_edge.training.qat import is_quantized_run

    run = qat_run  # qat() itself checked that the reloaded model gives the trained model's outputs
    assert run.quantized and is_quantized_run(qat_dir)
    assert any(type(layer).__name__.startswith("QuantizeWrapper") for layer in run.encoder.layers)
    assert run.thresholds == json.loads((qat_dir / "thresholds.json").read_text())
    _, _, float_run = tiny_data
    assert not is_quantized_run(float_run)


def test_qat_int8_is_fully_integer_with_uint8_io(qat_tflite):
    description = read_description(qat_tflite)
    assert description["precision"] == "qat-int8" and description["io"] == "int8"
    assert description["source_run"]["quantized"] is True and description["source_run"]["qat"]["epochs"] == 1
    image = description["signatures"]["encode"]["inputs"][0]
    assert image["dtype"] == "uint8" and image["quantization"]["zero_point"] == 0
    assert image["quantization"]["scale"] == pytest.approx(1 / 255, rel=1e-4)  # raw window pixels
    summary = op_summary(qat_tflite)
    matmuls = summary["classify"]["ops"]["FULLY_CONNECTED"]  # the unrolled head is quantized too
    assert matmuls["integer"] == matmuls["count"] == 9  # 2 input projections, 2 x 3 recurrent steps, the output Dense (as test_convert)
    assert summary["classify"]["variable_tensors"] == 0 == summary["encode"]["variable_tensors"]
    for signature in ("encode", "classify"):
        assert all(e["float"] == 0 and e["hybrid"] == 0 for e in summary[signature]["ops"].values()), signature
        assert "float32" not in summary[signature]["weight_bytes"], signature
        assert "DEQUANTIZE" not in summary[signature]["ops"], signature  # integer I/O: nothing to dequantize
    assert "MUL" not in summary["encode"]["ops"]


def test_qat_int8_runs_without_tensorflow_close_to_the_qat_model(qat_tflite, qat_run, tiny_data):
    _, series, _ = tiny_data
    images = series[5].images
    path = qat_tflite.parent / "images.npy"
    np.save(path, images)
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        for name in ("tensorflow", "tf_keras", "keras"):
            sys.modules[name] = None
        from ich_edge.runtime.tflite_model import TFLiteStudyModel
        model = TFLiteStudyModel(sys.argv[2], num_threads=1)
        print(json.dumps(model.predict_series(np.load(sys.argv[1])).tolist()))
        """
    )
    done = subprocess.run([sys.executable, "-c", script, str(path), str(qat_tflite)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    tflite = np.array(json.loads(done.stdout.strip().splitlines()[-1]))

    from ich_edge.training.evaluate import predict_series

    reference = predict_series(qat_run.encoder, qat_run.head, images, qat_run.sequence_config)
    assert tflite.shape == reference.shape
    assert np.abs(tflite - reference).max() <= 0.1


def test_qat_refuses_a_qat_dir_and_its_own_run_folder(qat_dir, tiny_data, capsys):
    cache, _, run = tiny_data
    assert main(["qat", "--model", str(qat_dir), "--data", str(cache), "--out", str(qat_dir.parent / "x")]) == 2
    assert "already a QAT_DIR; pass the float RUN_DIR" in capsys.readouterr().err
    assert main(["qat", "--model", str(run), "--data", str(cache), "--out", str(run)]) == 2
    assert "--out must be a new folder" in capsys.readouterr().err
    assert main(["qat", "--model", str(run), "--data", str(cache), "--out", str(qat_dir)]) == 3  # OutputExistsError: could not run
    assert "add --force" in capsys.readouterr().err
    other = qat_dir.parent / "not_a_qat_dir"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["qat", "--model", str(run), "--data", str(cache), "--out", str(other)]) == 3  # any non-empty folder
    assert "add --force" in capsys.readouterr().err and (other / "notes.txt").read_text() == "mine"
    assert main(["convert", "--model", str(qat_dir), "--precision", "int8", "--data", str(cache), "--out", str(qat_dir.parent / "y")]) == 2
    assert "converts a float RUN_DIR" in capsys.readouterr().err


def test_qat_int8_keeps_named_layers_float_with_the_float_run_beside(qat_dir, tiny_data, tmp_path):
    """qat-int8 keeps float only where int8 breaks parity: here the named head, as int8-mixed does."""
    cache, _, run = tiny_data
    out = tmp_path / "models"
    assert main(["convert", "--model", str(run), "--model", str(qat_dir), "--precision", "qat-int8", "--keep-float", "bilstm",
                 "--data", str(cache), "--out", str(out), "--no-layer-report"]) == 0
    path = out / "cnn_lstm_qat-int8.tflite"
    assert read_description(path)["kept_float"] == ["classify/bilstm"]
    summary = op_summary(path)
    assert summary["classify"]["ops"]["FULLY_CONNECTED"]["float"] >= 8  # the recurrent layer's matmuls
    convs = summary["encode"]["ops"]["CONV_2D"]
    assert convs["integer"] == convs["count"]  # the encoder keeps its trained int8 ranges
    assert summary["classify"]["variable_tensors"] == 0
