"""End to end with real files: `ich-edge convert` the tiny run, then `ich-edge parity` and `ich-edge bench`."""

from __future__ import annotations

import json

import pytest

from ich_edge import LABELS
from ich_edge.cli import main


@pytest.mark.slow
def test_convert_then_parity_and_bench(tiny_run, tmp_path, capsys):
    run_dir, cache_dir, _ = tiny_run
    models = tmp_path / "models"
    code = main(["convert", "--model", str(run_dir), "--precision", "fp32", "--precision", "fp16",
                 "--data", str(cache_dir), "--out", str(models)])
    assert code == 0, capsys.readouterr().err
    files = [models / "cnn_lstm_fp32.tflite", models / "cnn_lstm_fp16.tflite"]
    out = tmp_path / "parity"
    code = main(["parity", "--reference", str(run_dir), *[a for f in files for a in ("--tflite", str(f))],
                 "--data", str(cache_dir), "--studies", "all", "--out", str(out), "--bootstrap", "200"])
    captured = capsys.readouterr()
    report = json.loads((out / "report.json").read_text())
    fp32, fp16 = report["models"]
    # fp32 must match Keras: windows after the first start from a zero LSTM state, like Keras.
    assert fp32["passed"], fp32["failures"]
    assert max(fp32[level]["labels"][label]["max_abs_diff"] for level in ("slice", "study") for label in LABELS) < 1e-4
    assert fp16["precision"] == "fp16" and fp16["gates"]["max_auc_drop"] is not None
    assert code == (0 if report["passed"] else 1), captured.err

    result_path = tmp_path / "bench.json"
    code = main(["bench", *map(str, files), "--threads", "1", "--backend", "xnnpack,reference", "--runs", "3",
                 "--warmup", "1", "--data", str(cache_dir), "--json", str(result_path), "--results-dir", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    result = json.loads(result_path.read_text())
    assert [r["status"] for r in result["rows"]] == ["ok"] * 4
    assert all(m["study_auc"]["studies"] == 12 for m in result["models"])
    # The fused LSTM is not an XNNPACK op: it stays on the builtin kernels.
    xnn = next(r for r in result["rows"] if r["variant"] == "fp32" and r["backend"] == "xnnpack")
    assert xnn["nodes"]["signatures"]["classify"]["not_delegated"].get("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2
