"""The demo's closing table joins parity and bench results by the files' sha256, never by file name."""

from __future__ import annotations

from ich_edge import LABELS
from summary import summary_rows, summary_table  # scripts/summary.py


def _study(auc: float) -> dict:
    return {"labels": {label: {"auc": auc} for label in LABELS}}


def _model(file: str, precision: str, sha: str, conversion: str, deployment: str, auc: float) -> dict:
    return {"file": file, "precision": precision, "sha256": sha, "verdict": deployment,
            "conversion": {"verdict": conversion, "study": _study(auc)},
            "deployment": {"verdict": deployment, "study": _study(auc)}}


PARITY = {
    "format": "ich-edge-parity/2",
    "reference_metrics": {"study": _study(0.98)},
    "converted_from": [{"path": "/x/qat", "quantized": True, "metrics": {"study": _study(0.97)}}],
    "models": [
        _model("cnn_lstm_fp32.tflite", "fp32", "a" * 64, "PASS", "PASS", 0.98),
        _model("cnn_lstm_qat-int8.tflite", "qat-int8", "b" * 64, "PASS", "FAIL", 0.96),
    ],
}


def _row(path: str, variant: str, p50: float) -> dict:
    return {"path": path, "file": path.rsplit("/", 1)[-1], "variant": variant, "backend": "xnnpack", "threads": 2,
            "status": "ok", "study_latency_ms": {"p50": p50}}


BENCH = {
    "models": [
        {"path": "/m/cnn_lstm_fp32.tflite", "file": "cnn_lstm_fp32.tflite", "variant": "fp32", "size_mb": 0.30, "sha256": "a" * 64},
        {"path": "/m/cnn_lstm_qat-int8.tflite", "file": "cnn_lstm_qat-int8.tflite", "variant": "qat-int8", "size_mb": 0.12,
         "sha256": "b" * 64},
        # Same name as the parity report's fp32 file, other contents (e.g. converted again after parity).
        {"path": "/other/cnn_lstm_fp32.tflite", "file": "cnn_lstm_fp32.tflite", "variant": "fp32", "size_mb": 0.31,
         "sha256": "c" * 64},
    ],
    "rows": [_row("/m/cnn_lstm_fp32.tflite", "fp32", 4.0), _row("/m/cnn_lstm_qat-int8.tflite", "qat-int8", 2.0),
             _row("/other/cnn_lstm_fp32.tflite", "fp32", 9.0)],
}


def test_rows_join_by_sha256_and_a_same_named_file_keeps_its_own_row():
    rows = {r.get("sha256") or r["precision"]: r for r in summary_rows([PARITY], BENCH, shipped_sha256="a" * 64)}
    fp32, qat, other = rows["a" * 64], rows["b" * 64], rows["c" * 64]
    assert (fp32["conversion"], fp32["deployment"], fp32["latency_ms"], fp32["size_mb"]) == ("PASS", "PASS", 4.0, 0.30)
    assert (qat["deployment"], qat["latency_ms"], qat["speedup"]) == ("FAIL", 2.0, 2.0)
    assert other["latency_ms"] == 9.0 and "conversion" not in other and "auc" not in other  # no borrowed verdict
    assert fp32["shipped"] and not qat["shipped"] and not other["shipped"]
    assert rows["keras float (validated)"]["auc"]["any"] == 0.98 and rows["keras qat (qat)"]["auc"]["any"] == 0.97


def test_a_bench_without_hashes_is_never_joined_by_name():
    bench = {**BENCH, "models": [{k: v for k, v in m.items() if k != "sha256"} for m in BENCH["models"]]}
    rows = summary_rows([PARITY], bench)
    joined = [r for r in rows if r.get("conversion") and r.get("latency_ms")]
    assert joined == []


def test_table_marks_the_shipped_file_and_shows_both_verdicts(tmp_path):
    import json

    (tmp_path / "parity.json").write_text(json.dumps(PARITY))
    (tmp_path / "bench.json").write_text(json.dumps(BENCH))
    table = summary_table([tmp_path / "parity.json"], tmp_path / "bench.json", shipped_sha256="a" * 64)
    lines = table.splitlines()
    shipped = next(line for line in lines if line.startswith("* fp32"))
    assert "PASS    PASS" in shipped and "4.0" in shipped and "1.00x" in shipped
    qat = next(line for line in lines if line.startswith("qat-int8"))
    assert "PASS    FAIL" in qat and "2.00x" in qat
    assert summary_table([tmp_path / "missing.json"], tmp_path / "missing_bench.json") == "no parity or bench results to summarise"
