"""`ich-edge train` end to end on a tiny cache: outputs, resume, reload, clear option errors."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from ich_edge import LABELS
from ich_edge.cli import main

pytestmark = pytest.mark.training  # `ich-edge train` needs TensorFlow

TINY_OPTIONS = [
    "--width", "0.25", "--feature-dim", "8", "--rnn-units", "4",
    "--window-slices", "4", "--stride-slices", "2", "--batch-size", "2", "--seed", "1",
]


def _train(capsys, data, out, *extra):
    code = main(["train", "--data", str(data), "--out", str(out), *TINY_OPTIONS, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def first_run(tiny_cache, tiny_test_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "RUN"
    stdout, stderr = io.StringIO(), io.StringIO()  # capsys is function-scoped
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["train", "--data", str(tiny_cache.root), "--out", str(out), "--test", str(tiny_test_cache.root),
                     "--epochs", "3", "--max-minutes", "0.001", *TINY_OPTIONS])  # the time budget stops it after epoch 1
    return out, code, stdout.getvalue(), stderr.getvalue()


def test_train_writes_the_run_folder(first_run):
    out, code, stdout, stderr = first_run
    assert code == 0, stderr
    for name in ("model.keras", "config.json", "split.json", "thresholds.json", "report.json", "report.md",
                 "history.json", "loss.png", "roc_validation.png", "roc_test.png"):
        assert (out / name).is_file(), name
    assert "epoch 1/3" in stdout and "stopping: time budget" in stdout and "epoch 2/3" not in stdout
    config = json.loads((out / "config.json").read_text())
    assert set(config) >= {"train", "model", "sequence", "preprocess", "data", "quantized"}
    assert config["quantized"] is False
    assert config["model"]["input_size_px"] == 32 and config["sequence"]["window_slices"] == 4
    assert config["data"]["train_studies"] + config["data"]["val_studies"] == 10
    split = json.loads((out / "split.json").read_text())
    assert set(split["train_studies"]).isdisjoint(split["val_studies"])
    thresholds = json.loads((out / "thresholds.json").read_text())
    assert thresholds["specificity"] == 0.9
    assert set(thresholds["slice"]) == set(LABELS) == set(thresholds["study"])
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["epochs_run"] == 1 and report["run"]["stopped"] == "time budget"
    assert report["test"]["n_studies"] == 6 and report["validation"]["n_studies"] == 2
    assert set(report["test"]["model"]["study"]["auc_ci95"]) == set(LABELS)
    assert "at_thresholds" in report["test"]["model"]["study"]
    assert "| any |" in (out / "report.md").read_text()
    assert (out / "roc_test.png").read_bytes()[:4] == b"\x89PNG"


def test_load_run_returns_working_models(first_run):
    from ich_edge.sequence import SequenceConfig
    from ich_edge.training.evaluate import predict_series
    from ich_edge.training.keras import keras
    from ich_edge.training.run import load_run

    out = first_run[0]
    run = load_run(out, custom_object_scope=keras.saving.custom_object_scope({}))
    assert run.sequence_config == SequenceConfig(4, 2) and not run.quantized
    assert run.thresholds["study"]["any"] == pytest.approx(json.loads((out / "thresholds.json").read_text())["study"]["any"])
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    probabilities = predict_series(run.encoder, run.head, images, run.sequence_config)
    assert probabilities.shape == (5, 6) and ((0 <= probabilities) & (probabilities <= 1)).all()


def test_resume_continues_and_counts_epochs(first_run, tiny_cache, tmp_path, capsys):
    """Epochs and the time budget may change on resume; the recipe may not."""
    import shutil

    out = tmp_path / "RUN"
    shutil.copytree(first_run[0], out)
    code, stdout, stderr = _train(capsys, tiny_cache.root, out, "--epochs", "2")
    assert code == 0, stderr
    assert "resuming" in stdout and "after epoch 1" in stdout
    assert "epoch 2/2" in stdout and "epoch 1/2" not in stdout
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert json.loads((out / "report.json").read_text())["run"]["epochs_run"] == 2

    code, stdout, stderr = _train(capsys, tiny_cache.root, out, "--epochs", "2", "--learning-rate", "0.01")
    assert code == 3  # an existing output: exit 3, one line saying to add --force
    assert stderr.count("\n") == 1 and "another configuration" in stderr and "add --force" in stderr


@pytest.mark.parametrize(
    "options, message",
    [
        (["--epochs", "0"], "epochs must be"),
        (["--val-fraction", "1.5"], "val_fraction must be"),
        (["--backbone", "resnet"], "backbone must be one of"),
        (["--rnn", "transformer"], "rnn must be one of"),
        (["--window-slices", "4", "--stride-slices", "9"], "stride_slices must be"),
        (["--max-minutes", "-1"], "max_minutes must be"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(tiny_cache, tmp_path, capsys, options, message):
    code = main(["train", "--data", str(tiny_cache.root), "--out", str(tmp_path / "RUN"), *options])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err and err.startswith("ich-edge: error:")
    assert not (tmp_path / "RUN").exists()


def test_missing_cache_says_how_to_make_one(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "RUN")])
    err = capsys.readouterr().err
    assert code != 0 and "ich-edge prepare" in err and err.count("\n") == 1


def test_help_states_the_real_defaults():
    import re

    from ich_edge.cli.train import command
    from ich_edge.sequence import SequenceConfig
    from ich_edge.training.model import ModelConfig
    from ich_edge.training.train import TrainConfig

    sequence = {k: v for k, v in SequenceConfig().to_dict().items() if k.endswith("slices")}
    defaults = {**TrainConfig().to_dict(), **sequence, "width": ModelConfig().width}
    checked = 0
    for param in command.params:
        match = re.search(r"\(default ([0-9.e+-]+)", param.help or "")
        if match and param.name in defaults:
            assert float(match.group(1)) == pytest.approx(float(defaults[param.name])), param.name
            checked += 1
    assert checked >= 11


def test_train_refuses_a_folder_that_is_not_its_run(tiny_cache, tmp_path, capsys):
    """An imported RUN_DIR, or any non-empty folder without a train run to continue, needs --force."""
    out = tmp_path / "imported"
    out.mkdir()
    (out / "model.keras").write_text("somebody's model")
    (out / "config.json").write_text("{}")
    code = main(["train", "--data", str(tiny_cache.root), "--out", str(out), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1 and "add --force" in err and "model.keras" in err
    assert (out / "model.keras").read_text() == "somebody's model"

