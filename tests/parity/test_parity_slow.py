"""End to end with real files: `ich-edge convert` the tiny run to fp32 and fp16, then `ich-edge parity` and `ich-edge bench`."""

from __future__ import annotations

import json

import pytest

from ich_edge import LABELS
from ich_edge.cli import main


@pytest.mark.slow
def test_convert_then_parity_and_bench(tiny_run, tmp_path, capsys):
    """One outcome: fp32 passes both questions; fp16 of the *untrained* tiny model fails, on ranking and decisions only.

    The untrained model scores its studies within a hair of each other, so fp16's rounding
    (max |dp| well under 0.05) reorders some of them: parity must catch that (exit 1) and
    say which label and gate, not crash or pass.
    """
    run_dir, cache_dir, _ = tiny_run
    models = tmp_path / "models"
    code = main(["convert", "--model", str(run_dir), "--precision", "fp32", "--precision", "fp16",
                 "--data", str(cache_dir), "--out", str(models)])
    assert code == 0, capsys.readouterr().err
    files = [models / "cnn_lstm_fp32.tflite", models / "cnn_lstm_fp16.tflite"]
    out = tmp_path / "parity"
    code = main(["parity", "--reference", str(run_dir), *[a for f in files for a in ("--model", str(f))],
                 "--data", str(cache_dir), "--out", str(out), "--bootstrap", "200"])
    captured = capsys.readouterr()
    report = json.loads((out / "report.json").read_text())
    fp32, fp16 = report["models"]
    assert code == 1, captured.err
    assert report["verdict"] == "FAIL" and report["evidence"]["sufficient"]
    # fp32 must match Keras: windows after the first start from a zero LSTM state, like Keras.
    assert fp32["verdict"] == "PASS", fp32["failures"]
    assert max(fp32["conversion"][level]["labels"][label]["max_abs_diff"] for level in ("slice", "study") for label in LABELS) < 1e-4
    assert fp16["precision"] == "fp16" and fp16["verdict"] == "FAIL"
    assert fp16["failures"] and all(("study AUC drop" in line or "decision agreement" in line) for line in fp16["failures"])
    assert max(fp16["deployment"]["study"]["labels"][label]["max_abs_diff"] for label in LABELS) < 0.05
    fail_lines = [line for line in captured.err.splitlines() if line.startswith("FAIL ")]
    assert len(fail_lines) == len(fp16["failures"]) and all("cnn_lstm_fp16.tflite (fp16)" in line for line in fail_lines)

    result_path = tmp_path / "bench.json"
    code = main(["bench", *[a for f in files for a in ("--model", str(f))], "--threads", "1", "--backend", "xnnpack,reference", "--runs", "3",
                 "--warmup", "1", "--data", str(cache_dir), "--out", str(result_path), "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    result = json.loads(result_path.read_text())
    assert [r["status"] for r in result["rows"]] == ["ok"] * 4
    assert all(m["study_auc"]["studies"] == 48 for m in result["models"])
    assert [m["sha256"] for m in result["models"]] == [fp32["sha256"], fp16["sha256"]]  # the summary joins on these
    # The stateless head has no fused LSTM; its matmuls and gate arithmetic all run on XNNPACK
    # (only the step-slicing ops stay on builtin kernels).
    xnn = next(r for r in result["rows"] if r["variant"] == "fp32" and r["backend"] == "xnnpack")
    left = xnn["nodes"]["signatures"]["classify"]["not_delegated"]
    assert not {"UNIDIRECTIONAL_SEQUENCE_LSTM", "FULLY_CONNECTED", "BATCH_MATMUL", "LOGISTIC", "TANH"} & set(left), left
