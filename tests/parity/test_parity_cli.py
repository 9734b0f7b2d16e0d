"""``ich-edge parity`` end to end: held-out selection, report files, exit codes, failing labels."""

from __future__ import annotations

import json

import pytest

from ich_edge import LABELS
from ich_edge.cli import main
from ich_edge.errors import ConfigError, ModelError
from ich_edge.training import parity

@pytest.fixture
def stand_ins(tiny_run, tmp_path, monkeypatch, keras_as_tflite):
    """Model "files" served by KerasAsTFLite (see conftest); gates come from the recipes."""
    import ich_edge.runtime.tflite_model as tflite_model

    monkeypatch.setattr(tflite_model, "TFLiteStudyModel", keras_as_tflite)
    run_dir = tiny_run[0]
    files = {}
    for name, spec in {
        "same_fp32": {"precision": "fp32"},
        "same_int8": {"precision": "int8"},
        "bad_int8": {"precision": "int8", "invert": ["subdural"]},
    }.items():
        files[name] = tmp_path / f"{name}.tflite"
        files[name].write_text(json.dumps({"run": str(run_dir), **spec}))
    return files


def test_identical_models_pass_and_reports_are_written(tiny_run, stand_ins, tmp_path, capsys):
    run_dir, cache_dir, split = tiny_run
    out = tmp_path / "parity"
    code = main([
        "parity", "--reference", str(run_dir), "--tflite", str(stand_ins["same_fp32"]),
        "--tflite", str(stand_ins["same_int8"]), "--data", str(cache_dir), "--out", str(out), "--bootstrap", "50",
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "PASS" in captured.out and "FAIL" not in captured.out
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is True
    assert report["data"]["studies"] == len(split["val_studies"])  # the run's validation studies only
    assert "validation studies" in report["data"]["selection"]
    fp32 = report["models"][0]
    assert fp32["gates"] == {"max_abs_diff": 1e-4, "max_auc_drop": None, "min_agreement": None}
    for level in ("slice", "study"):
        for label in LABELS:
            entry = fp32[level]["labels"][label]
            assert entry["max_abs_diff"] == 0.0 and entry["agreement"] == 1.0
            assert set(entry) >= {"auc", "auc_ci95", "auc_delta", "auc_delta_ci95", "log_loss", "mean_abs_diff"}
    markdown = (out / "report.md").read_text()
    assert "**PASS** `same_int8.tflite` (int8)" in markdown and "| subdural |" in markdown
    png = (out / "roc_study.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md", "roc_study.png"]


def test_a_failing_variant_exits_1_naming_the_label(tiny_run, stand_ins, tmp_path, capsys):
    run_dir, cache_dir, _ = tiny_run
    json_path = tmp_path / "only.json"
    code = main([
        "parity", "--reference", str(run_dir), "--tflite", str(stand_ins["bad_int8"]),
        "--data", str(cache_dir), "--json", str(json_path), "--bootstrap", "20",
    ])
    captured = capsys.readouterr()
    assert code == 1
    fail_lines = [line for line in captured.err.splitlines() if line.startswith("FAIL ")]
    assert fail_lines and all("bad_int8.tflite (int8): subdural study" in line for line in fail_lines)
    assert any("decision agreement" in line for line in fail_lines)
    report = json.loads(json_path.read_text())
    assert report["passed"] is False
    assert report["models"][0]["study"]["labels"]["any"]["agreement"] == 1.0  # untouched labels still agree


def test_overrides_loosen_the_gate(tiny_run, stand_ins, capsys):
    run_dir, cache_dir, _ = tiny_run
    code = main([
        "parity", "--reference", str(run_dir), "--tflite", str(stand_ins["bad_int8"]), "--data", str(cache_dir),
        "--bootstrap", "0", "--min-agreement", "0", "--max-auc-drop", "1",
    ])
    assert code == 0, capsys.readouterr().err


def test_all_studies_and_error_paths(tiny_run, stand_ins, tmp_path):
    run_dir, cache_dir, split = tiny_run
    config = parity.ParityConfig(replicates=0, studies="all")
    report, curves = parity.run_parity(run_dir, [stand_ins["same_int8"]], cache_dir, config)
    assert report["data"]["studies"] == len(split["train_studies"]) + len(split["val_studies"])
    assert curves["study_true"].shape == (report["data"]["studies"], len(LABELS))

    from ich_edge.cache import Cache

    train_only = Cache.create(tmp_path / "train_only", Cache.open(cache_dir).preprocess)
    for item in Cache.open(cache_dir).load_all():
        if item.study_uid in split["train_studies"]:
            train_only.write(item)
    with pytest.raises(ConfigError, match="only training studies"):
        parity.run_parity(run_dir, [stand_ins["same_int8"]], tmp_path / "train_only", parity.ParityConfig(replicates=0))
    with pytest.raises(ModelError, match="not a run folder"):
        parity.run_parity(tmp_path, [stand_ins["same_int8"]], cache_dir, parity.ParityConfig(replicates=0))
