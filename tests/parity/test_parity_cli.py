"""``ich-edge parity`` end to end on real converted files: both questions, verdicts, exit codes, evidence."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ich_edge import LABELS
from ich_edge.ingest.cache import Cache
from ich_edge.cli import main
from ich_edge.errors import ConfigError, ModelError
from ich_edge.training import parity


def _parity(run_dir, cache_dir, *files, extra=(), converted_from=()):
    args = ["parity", "--reference", str(run_dir), "--data", str(cache_dir), *extra]
    for folder in converted_from:
        args += ["--converted-from", str(folder)]
    for path in files:
        args += ["--model", str(path)]
    return main(args)


def test_a_converted_file_passes_both_questions_and_reports_are_written(tiny_run, converted, tmp_path, capsys):
    run_dir, cache_dir, split = tiny_run
    out = tmp_path / "parity"
    code = _parity(run_dir, cache_dir, converted["fp32"], extra=["--out", str(out), "--bootstrap", "100"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "PASS" and report["passed"] is True
    assert report["data"]["studies"] == len(split["val_studies"]) == 24  # the run's validation studies only
    assert report["evidence"]["sufficient"] and report["evidence"]["min_studies"] == 20
    assert report["evidence"]["labels"]["subdural"]["positives"] >= 5
    (model,) = report["models"]
    assert model["sha256"] == hashlib.sha256(converted["fp32"].read_bytes()).hexdigest()
    assert model["conversion"]["verdict"] == model["deployment"]["verdict"] == "PASS"
    assert model["conversion"]["gates"]["max_abs_diff"] == 1e-4
    assert model["deployment"]["gates"] == parity.DEPLOYMENT_GATES.to_dict()
    for level in ("slice", "study"):
        for label in LABELS:
            entry = model["deployment"][level]["labels"][label]
            assert entry["max_abs_diff"] < 1e-4 and entry["agreement"] == 1.0 and entry["lost_detections"] == 0
            assert set(entry) >= {"auc", "auc_ci95", "auc_delta", "auc_delta_ci95", "sensitivity", "reference_sensitivity"}
    markdown = (out / "report.md").read_text()
    assert "**Verdict: PASS**" in markdown and "conversion vs" in markdown and "deployment vs" in markdown
    assert "| subdural |" in markdown and "positive studies here" in markdown
    assert (out / "roc_study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_deployment_parity_fails_a_file_that_matches_its_own_source(tiny_run, converted, parity_reports, capsys):
    """The bad file is a faithful conversion of a model that is not the validated one: conversion PASS, deployment FAIL."""
    report = json.loads(parity_reports["fail"].read_text())
    (model,) = report["models"]
    assert report["verdict"] == model["verdict"] == "FAIL"
    assert model["converted_from"] == str(converted["bad_run"])
    assert model["conversion"]["verdict"] == "PASS", model["conversion"]["failures"]
    assert model["deployment"]["verdict"] == "FAIL"
    assert model["deployment"]["failures"] and all(" subdural " in line for line in model["deployment"]["failures"])
    sdh = model["deployment"]["study"]["labels"]["subdural"]
    assert sdh["lost_detections"] > 1 and sdh["sensitivity"] < sdh["reference_sensitivity"]
    assert model["deployment"]["study"]["labels"]["any"]["agreement"] == 1.0  # untouched labels still agree
    # The same through the CLI: exit code 1 and one FAIL line per failed gate, naming the label.
    run_dir, cache_dir, _ = tiny_run
    code = _parity(run_dir, cache_dir, converted["bad_fp32"], extra=["--bootstrap", "50"], converted_from=[converted["bad_run"]])
    err = capsys.readouterr().err
    assert code == 1
    fails = [line for line in err.splitlines() if line.startswith("FAIL ")]
    assert fails and all("(fp32) deployment: subdural" in line for line in fails)
    assert any("bleeding studies flagged by the reference are missed" in line for line in fails)


def test_without_its_source_the_bad_file_fails_conversion_too(tiny_run, converted, capsys):
    run_dir, cache_dir, _ = tiny_run
    config = parity.ParityConfig(replicates=50)
    report, _ = parity.run_parity(run_dir, [converted["bad_fp32"]], cache_dir, config)
    (model,) = report["models"]
    assert model["conversion"]["verdict"] == "FAIL" and model["converted_from"] == str(run_dir)
    assert any("in none of the folders given" in note and "bad_run" in note for note in report["notes"])


def test_a_moved_source_folder_is_found_by_its_model_digest(tiny_run, converted, tmp_path):
    """The file names its source by model.keras's sha256, not by a path of the machine that converted it:
    the moved copy is matched among two float folders (by path, parity could not tell them apart)."""
    import shutil

    run_dir, cache_dir, _ = tiny_run
    moved = shutil.copytree(converted["bad_run"], tmp_path / "moved_elsewhere")
    config = parity.ParityConfig(replicates=50)
    report, _ = parity.run_parity(run_dir, [converted["bad_fp32"]], cache_dir, config, converted_from=[moved])
    (model,) = report["models"]
    assert model["converted_from"] == str(moved)
    assert model["conversion"]["verdict"] == "PASS" and model["deployment"]["verdict"] == "FAIL"
    # two copies of one model.keras: the one with the folder name the file recorded
    named = shutil.copytree(converted["bad_run"], tmp_path / "again" / Path(converted["bad_run"]).name)
    report, _ = parity.run_parity(run_dir, [converted["bad_fp32"]], cache_dir, config, converted_from=[moved, named])
    assert report["models"][0]["converted_from"] == str(named)


def test_three_study_cache_is_insufficient_with_exit_4(tiny_run, converted, tmp_path, capsys):
    run_dir, cache_dir, split = tiny_run
    small = Cache.create(tmp_path / "three", Cache.open(cache_dir).preprocess)
    for item in [s for s in Cache.open(cache_dir).load_all() if s.study_uid in split["val_studies"]][:3]:
        small.write(item)
    out = tmp_path / "parity"
    code = _parity(run_dir, tmp_path / "three", converted["fp32"], extra=["--out", str(out), "--bootstrap", "50"])
    err = capsys.readouterr().err
    assert code == 4, err
    assert "parity INSUFFICIENT: 3 held-out studies < the 20 a verdict needs" in err
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "INSUFFICIENT" and not report["passed"]
    assert report["models"][0]["conversion"]["verdict"] == report["models"][0]["deployment"]["verdict"] == "INSUFFICIENT"
    assert "**Verdict: INSUFFICIENT**" in (out / "report.md").read_text()


def test_a_gated_label_short_of_positives_is_insufficient_and_narrowing_the_gates_passes(tiny_run, converted, capsys):
    run_dir, cache_dir, _ = tiny_run
    # 7 positive studies per subtype, 12 for "any": asking for 10 leaves the subtypes not evaluable.
    code = _parity(run_dir, cache_dir, converted["fp32"], extra=["--bootstrap", "50", "--min-positive-studies", "10"])
    err = capsys.readouterr().err
    assert code == 4
    assert "NOT EVALUABLE cnn_lstm_fp32.tflite (fp32) deployment: subdural not evaluable (7 positive studies < 10)" in err
    assert "deployment: any not evaluable" not in err
    code = _parity(run_dir, cache_dir, converted["fp32"],
                   extra=["--bootstrap", "50", "--min-positive-studies", "10", "--gated-labels", "any"])
    assert code == 0, capsys.readouterr().err


def test_without_bootstrap_the_interval_gate_cannot_pass(tiny_run, converted, capsys):
    run_dir, cache_dir, _ = tiny_run
    code = _parity(run_dir, cache_dir, converted["fp32"], extra=["--bootstrap", "0"])
    assert code == 4
    assert "interval of the AUC change not computed (needs --bootstrap > 0)" in capsys.readouterr().err


def test_overrides_loosen_the_deployment_gates(tiny_run, converted, capsys):
    run_dir, cache_dir, _ = tiny_run
    loose = ["--deployment-min-agreement", "0", "--deployment-max-auc-drop", "1", "--deployment-max-auc-drop-ci95", "1",
             "--deployment-max-lost-detections", "100", "--bootstrap", "20"]
    code = _parity(run_dir, cache_dir, converted["bad_fp32"], extra=loose, converted_from=[converted["bad_run"]])
    assert code == 0, capsys.readouterr().err


def test_old_spelling_reference_qat_dir_resolves_to_its_float_run(tiny_run, tmp_path):
    run_dir = tiny_run[0]
    qat_dir = tmp_path / "qat"
    qat_dir.mkdir()
    (qat_dir / "config.json").write_text(json.dumps({"quantized": True, "qat": {"source_run": str(run_dir)}}))
    reference, sources, notes = parity.resolve_references(qat_dir)
    assert reference.path == run_dir and [s.path for s in sources] == [qat_dir] and "deployment against" in notes[0]
    (qat_dir / "config.json").write_text(json.dumps({"quantized": True, "qat": {"source_run": str(tmp_path / "gone")}}))
    with pytest.raises(ConfigError, match="--reference RUN_DIR --converted-from QAT_DIR"):
        parity.resolve_references(qat_dir)


def test_all_studies_and_error_paths(tiny_run, converted, tmp_path):
    run_dir, cache_dir, split = tiny_run
    config = parity.ParityConfig(replicates=0, studies="all")
    report, curves = parity.run_parity(run_dir, [converted["fp32"]], cache_dir, config)
    assert report["data"]["studies"] == len(split["train_studies"]) + len(split["val_studies"])
    assert curves["study_true"].shape == (report["data"]["studies"], len(LABELS))

    train_only = Cache.create(tmp_path / "train_only", Cache.open(cache_dir).preprocess)
    for item in Cache.open(cache_dir).load_all():
        if item.study_uid in split["train_studies"]:
            train_only.write(item)
    with pytest.raises(ConfigError, match="only training studies"):
        parity.run_parity(run_dir, [converted["fp32"]], tmp_path / "train_only", parity.ParityConfig(replicates=0))
    with pytest.raises(ModelError, match="not a run folder"):
        parity.run_parity(tmp_path, [converted["fp32"]], cache_dir, parity.ParityConfig(replicates=0))
