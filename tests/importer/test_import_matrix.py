"""The Keras CNN-LSTMs people write, each either deployed exactly or refused at import in one line.

Every model is built here (16 px slices, window 4, random weights), in tf_keras (saved as
.h5) and/or Keras 3 (saved as .keras by a child process). An accepted model goes
import -> convert (fp32, int8) -> parity fp32 PASS -> predict without TensorFlow, and its fp32
file must equal the ORIGINAL model on padded windows (short studies padded with blank
slices, air at both ends) within 1e-5. A refused one exits with one line (exit 3) and
nothing written. The fast suite runs a representative subset through the whole chain and
the refusals; ``-m slow`` runs the whole matrix.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from import_helpers import write_cache, write_keras3
from ich_edge.cli import main

S, T = 16, 4
ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5

# Shared pieces of the model code (exec'd with ``keras`` bound to tf_keras or Keras 3).
PRELUDE = f"""
S, T = {S}, {T}
L = keras.layers
TD = L.TimeDistributed
inp = keras.Input((T, S, S, 3))
def convs(x):
    x = TD(L.Conv2D(4, 3, activation="relu"))(x)
    x = TD(L.MaxPooling2D(2))(x)
    return TD(L.Flatten())(x)
"""
RANDOM_BN = """
for layer in model.weights:
    name = getattr(layer, "path", None) or layer.name
    if "moving" in name:
        layer.assign(np.random.default_rng(1).uniform(0.5, 1.5, tuple(layer.shape)).astype("float32"))
"""

OK = {
    "td_dense_head": ("x = L.LSTM(8, return_sequences=True)(convs(inp))\n"
                      "model = keras.Model(inp, TD(L.Dense(6, activation='sigmoid'))(x))", ()),
    "td_activation_head": ("x = L.GRU(8, return_sequences=True)(convs(inp))\n"
                           "model = keras.Model(inp, TD(L.Activation('sigmoid'))(TD(L.Dense(6))(x)))", ()),
    "dropout_noise_everywhere": (
        "x = TD(L.Conv2D(4, 3, activation='relu'))(inp)\nx = L.Dropout(0.3)(x)\nx = L.SpatialDropout3D(0.2)(x)\n"
        "x = L.GaussianNoise(0.1)(x)\nx = TD(L.Conv2D(4, 3, activation='relu'))(x)\nx = TD(L.GlobalAveragePooling2D())(x)\n"
        "x = L.Dropout(0.5)(x)\nx = L.LSTM(8, return_sequences=True, dropout=0.2)(x)\nx = L.Dropout(0.5)(x)\n"
        "model = keras.Model(inp, L.Dense(6, activation='sigmoid')(x))", ()),
    "bn_after_activation": (
        "x = TD(L.Conv2D(4, 3, activation='relu'))(inp)\nx = TD(L.BatchNormalization())(x)\n"
        "x = TD(L.Conv2D(4, 3))(x)\nx = TD(L.BatchNormalization())(x)\nx = TD(L.ReLU())(x)\n"
        "x = TD(L.Flatten())(x)\nx = L.LSTM(8, return_sequences=True)(x)\nx = L.BatchNormalization()(x)\n"
        "model = keras.Model(inp, L.Dense(6, activation='sigmoid')(x))\n" + RANDOM_BN, ()),
    "stacked_lstm": ("x = L.LSTM(8, return_sequences=True)(convs(inp))\nx = L.LSTM(6, return_sequences=True)(x)\n"
                     "model = keras.Model(inp, L.Dense(6, activation='sigmoid')(x))", ()),
    "bidirectional_gru_stack": (
        "x = L.Bidirectional(L.GRU(6, return_sequences=True))(convs(inp))\nx = L.GRU(6, return_sequences=True)(x)\n"
        "model = keras.Model(inp, L.Dense(6, activation='sigmoid')(x))", ()),
    "simple_rnn": ("x = L.SimpleRNN(8, return_sequences=True)(convs(inp))\n"
                   "model = keras.Model(inp, L.Dense(6, activation='sigmoid')(x))", ()),
    "one_output": ("x = L.LSTM(8, return_sequences=True)(convs(inp))\n"
                   "model = keras.Model(inp, L.Dense(1, activation='sigmoid')(x))", ("--output-labels", "any")),
    "softmax_background": ("x = L.LSTM(8, return_sequences=True)(convs(inp))\n"
                           "model = keras.Model(inp, L.Dense(2, activation='softmax')(x))", ("--output-labels", "background,any")),
    "study_level": ("x = L.LSTM(8)(convs(inp))\nmodel = keras.Model(inp, L.Dense(6, activation='sigmoid')(x))", ()),
}
#: (case, framework): every accepted model in each framework where it is written that way.
OK_MATRIX = [(c, "tf_keras") for c in OK if c != "bidirectional_gru_stack"] + [
    (c, "keras3") for c in ("td_dense_head", "dropout_noise_everywhere", "bn_after_activation",
                            "bidirectional_gru_stack", "simple_rnn", "softmax_background", "study_level")]
FAST_OK = [("td_dense_head", "tf_keras"), ("bn_after_activation", "tf_keras"), ("softmax_background", "tf_keras")]

REFUSED = {
    "masking": ("x = L.Masking(0.0)(convs(inp))\nx = L.LSTM(8, return_sequences=True)(x)\n"
                "model = keras.Model(inp, L.Dense(6, activation='sigmoid')(x))", r"\(Masking\).*WITHOUT a mask"),
    "convlstm2d": ("x = L.ConvLSTM2D(4, 3, return_sequences=True)(inp)\nx = TD(L.Flatten())(x)\n"
                   "model = keras.Model(inp, L.Dense(6, activation='sigmoid')(x))", r"\(ConvLSTM2D\)"),
    "attention": ("x = L.LSTM(8, return_sequences=True)(convs(inp))\nx = L.Attention()([x, x])\n"
                  "model = keras.Model(inp, L.Dense(6, activation='sigmoid')(x))", "attention is not supported"),
    "multi_head_attention": ("x = L.LSTM(8, return_sequences=True)(convs(inp))\nx = L.MultiHeadAttention(2, 4)(x, x)\n"
                             "model = keras.Model(inp, L.Dense(6, activation='sigmoid')(x))", "attention is not supported"),
}
REFUSED_MATRIX = [("masking", "tf_keras"), ("masking", "keras3"), ("convlstm2d", "tf_keras"), ("attention", "tf_keras"),
                  ("multi_head_attention", "keras3")]


def _build_tf_keras(code: str):
    from ich_edge.training.keras import keras

    keras.utils.set_random_seed(0)
    scope = {"keras": keras, "np": np}
    exec(textwrap.dedent(PRELUDE + code), scope)  # noqa: S102 - the test's own model code
    return scope["model"]


def save_model(code: str, framework: str, folder: Path) -> Path:
    """The model of ``code`` saved as a user would: tf_keras .h5, or Keras 3 .keras."""
    if framework == "tf_keras":
        path = folder / "user.h5"
        _build_tf_keras(code).save(path)
        return path
    return write_keras3(folder / "user.keras", "keras.utils.set_random_seed(0)\n" + PRELUDE + code)


def _import(path: Path, run: Path, extra=(), data=None) -> int:
    args = ["import", "--model", str(path), "--out", str(run), *extra]
    return main(args + (["--data", str(data)] if data else []))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return write_cache(tmp_path_factory.mktemp("matrix") / "cache", size_px=S, studies=10)


@pytest.fixture(scope="module")
def dicom_study(tmp_path_factory):
    """A 3-slice CT study (shorter than the window: predict pads it with blank slices)."""
    spec = importlib.util.spec_from_file_location("dicom_helpers", ROOT / "tests" / "dicom" / "dicom_helpers.py")
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    folder = tmp_path_factory.mktemp("dicom") / "study"
    helpers.write_series(folder, num_slices=3)
    return folder


def padded_series(seed: int = 3) -> list[np.ndarray]:
    """uint8 series as the app pads them: 1, 2 and T-1 slices (padded to the window), and air at both ends."""
    rng = np.random.default_rng(seed)
    out = [rng.integers(0, 256, (n, S, S, 3), dtype=np.uint8) for n in (1, 2, T - 1)]
    air_ends = rng.integers(0, 256, (T, S, S, 3), dtype=np.uint8)
    air_ends[0] = air_ends[-1] = 0
    return out + [air_ends]


def original_outputs(path: Path, framework: str, run_config: dict, series: np.ndarray) -> np.ndarray:
    """The ORIGINAL file on ``series`` padded to the window with blank slices: ``(N, K)`` in the run's label order."""
    from ich_edge.training.importer.split import to_canonical

    window = np.zeros((1, T, S, S, 3), np.float32)
    window[0, : len(series)] = np.asarray(series, np.float32) / 255.0
    if framework == "keras3":
        from ich_edge.training.importer.reference import Keras3Worker

        worker = Keras3Worker(path)
        try:
            raw = worker(window)
        finally:
            worker.close()
    else:
        from ich_edge.training.keras import keras

        raw = np.asarray(keras.models.load_model(path, compile=False)(window, training=False))
    return to_canonical(raw, T, run_config["import"]["file_labels"])[0, : len(series)]


def predict_without_tensorflow(model: Path, study: Path) -> dict:
    """``ich-edge predict --json`` in a process where importing TensorFlow fails."""
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['tf_keras'] = None\n"
            "from ich_edge.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "predict", "--model", str(model), "--dicom", str(study), "--json"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    out = json.loads(done.stdout)
    return out[0] if isinstance(out, list) else out


def full_chain(tmp_path: Path, case: str, framework: str, cache: Path, study: Path) -> float:
    """import -> convert fp32 + int8 -> parity fp32 -> predict without TF; returns fp32 max |dp| on padded windows."""
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    code, extra = OK[case]
    path = save_model(code, framework, tmp_path)
    run, tfl, par = tmp_path / "run", tmp_path / "tfl", tmp_path / "parity"
    assert _import(path, run, extra, cache) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["import"]["verification"]["max_abs_diff"] <= TOLERANCE
    assert main(["convert", "--model", str(run), "--precision", "fp32,int8", "--data", str(cache), "--out", str(tfl),
                 "--calibration-windows", "4"]) == 0
    fp32 = tfl / "cnn_lstm_fp32.tflite"
    assert (tfl / "cnn_lstm_int8.tflite").is_file()
    code_parity = main(["parity", "--reference", str(run), "--model", str(fp32), "--test", str(cache), "--study-set", "all",
                        "--out", str(par), "--bootstrap", "20", "--min-studies", "5", "--min-positive-studies", "1",
                        "--gated-labels", "any"])
    report = json.loads((par / "report.json").read_text())
    verdicts = {m["file"]: m["verdict"] for m in report["models"]}
    assert verdicts["cnn_lstm_fp32.tflite"] == "PASS", (code_parity, report["models"][0])
    tflite = TFLiteStudyModel(fp32)
    worst = 0.0
    for series in padded_series():
        got = tflite.predict_series(series)
        worst = max(worst, float(np.abs(got - original_outputs(path, framework, config, series)).max()))
    assert worst <= TOLERANCE, f"{case}/{framework}: the fp32 file differs from the original by {worst:.2e} on padded windows"
    result = predict_without_tensorflow(fp32, study)
    assert list(result["study"]) == config["labels"]
    print(f"MATRIX {case}/{framework}: deployed; fp32 max |dp| on padded windows {worst:.1e}; "
          f"head {config['import']['head']}")
    return worst


def check_refused(tmp_path: Path, code: str, framework: str, pattern: str, capsys) -> str:
    import re

    path = save_model(code, framework, tmp_path)
    capsys.readouterr()
    assert _import(path, tmp_path / "run") == 3
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and re.search(pattern, err[0]), err
    assert not (tmp_path / "run").exists()
    print(f"MATRIX refused {framework}: {err[0]}")
    return err[0]


@pytest.mark.parametrize("case,framework", FAST_OK, ids=[f"{c}-{f}" for c, f in FAST_OK])
def test_common_idioms_deploy_exactly(tmp_path, cache, dicom_study, case, framework):
    full_chain(tmp_path, case, framework, cache, dicom_study)


@pytest.mark.slow
@pytest.mark.parametrize("case,framework", [p for p in OK_MATRIX if p not in FAST_OK],
                         ids=[f"{c}-{f}" for c, f in OK_MATRIX if (c, f) not in FAST_OK])
def test_matrix_every_idiom_deploys_exactly(tmp_path, cache, dicom_study, case, framework):
    full_chain(tmp_path, case, framework, cache, dicom_study)


@pytest.mark.parametrize("case,framework", [p for p in REFUSED_MATRIX if p[1] == "tf_keras"])
def test_what_cannot_be_exported_is_refused_in_one_line(tmp_path, case, framework, capsys):
    code, pattern = REFUSED[case]
    check_refused(tmp_path, code, framework, pattern, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("case,framework", [p for p in REFUSED_MATRIX if p[1] == "keras3"])
def test_keras3_files_that_cannot_be_exported_are_refused_in_one_line(tmp_path, case, framework, capsys):
    code, pattern = REFUSED[case]
    check_refused(tmp_path, code, framework, pattern, capsys)


def test_a_lambda_in_an_h5_is_refused_before_its_code_can_run(tmp_path, capsys):
    """Issue 21: tf_keras ran a Lambda's stored bytecode while loading the .h5, before import refused it."""
    marker = tmp_path / "lambda_ran.txt"
    code = (f"x = L.Lambda(lambda t: (open({str(marker)!r}, 'w').write('ran'), t)[1], name='scale_by_code')(convs(inp))\n"
            "x = L.LSTM(8, return_sequences=True)(x)\nmodel = keras.Model(inp, L.Dense(6, activation='sigmoid')(x))")
    path = save_model(code, "tf_keras", tmp_path)
    marker.unlink()  # building the model here ran it; only the import must not
    capsys.readouterr()
    assert _import(path, tmp_path / "run") == 3
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "'scale_by_code' (Lambda)" in err[0] and "none of it was executed" in err[0], err
    assert not marker.exists(), "the Lambda's code ran during import"
    assert not (tmp_path / "run").exists()
    assert main(["--debug", "import", "--model", str(path), "--out", str(tmp_path / "run")]) == 3  # not 1
    assert not marker.exists()


def test_a_serving_savedmodel_is_refused_in_one_line(tmp_path, capsys):
    import tensorflow as tf

    model = _build_tf_keras(OK["td_dense_head"][0])
    tf.saved_model.save(model, str(tmp_path / "served"))
    capsys.readouterr()
    assert _import(tmp_path / "served", tmp_path / "run") == 3
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err) == 1 and "exported for serving" in err[0] and "model.save" in err[0], err
    assert "WARNING" not in captured.err and "WARNING" not in captured.out


@pytest.mark.slow
def test_keras3_export_folder_and_custom_layer_are_refused_in_one_line(tmp_path, capsys):
    body = "keras.utils.set_random_seed(0)\n" + PRELUDE + OK["td_dense_head"][0]
    script = ("import os\nos.environ.pop('TF_USE_LEGACY_KERAS', None)\nimport keras, numpy as np\n"
              + textwrap.dedent(body) + f"\nmodel.export({str(tmp_path / 'exported')!r})\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, capture_output=True)
    capsys.readouterr()
    assert _import(tmp_path / "exported", tmp_path / "run") == 3
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "exported for serving" in err[0], err
    custom = ("@keras.saving.register_keras_serializable(package='user')\nclass Scale(keras.layers.Layer):\n"
              "    def call(self, x):\n        return x * 2.0\n"
              "x = L.LSTM(8, return_sequences=True)(Scale(name='scale')(convs(inp)))\n"
              "model = keras.Model(inp, L.Dense(6, activation='sigmoid')(x))")
    check_refused(tmp_path, custom, "keras3", r"'scale' \(Scale\) is not a standard Keras layer", capsys)
