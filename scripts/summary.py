"""The demo's closing table: one row per model file, joining parity and bench results by sha256.

Columns: precision, size (MB), study AUC per label (from ``ich-edge parity``), the
conversion and deployment parity verdicts, study latency (p50, XNNPACK, from ``ich-edge
bench``) and the speed-up versus fp32; the shipped file is marked. Rows are joined by the
files' sha256 (recorded by both tools), never by file name: two files called
``cnn_lstm_fp32.tflite`` from different runs stay two rows, and a bench row of a file that
was replaced after parity does not borrow its verdict.
"""

from __future__ import annotations

import json
from pathlib import Path

from ich_edge import LABELS, SHORT_NAMES
from ich_edge.precisions import FP32


def _load(path) -> dict | None:
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _verdict(entry: dict, key: str) -> str:
    if key in entry:
        return entry[key]["verdict"]
    return "PASS" if entry.get("passed") else "FAIL"  # a report from before the two questions


def summary_rows(parities: list[dict], bench: dict | None, backend: str = "xnnpack", shipped_sha256: str | None = None) -> list[dict]:
    """Rows from parity reports and a bench result (either may be missing), keyed by sha256."""
    rows: dict[str, dict] = {}
    for parity in parities:
        references = [("keras float (validated)", parity.get("reference_metrics", {}).get("study", {}))]
        references += [(("keras qat" if s.get("quantized") else "keras") + f" ({Path(s['path']).name})", s["metrics"]["study"])
                       for s in parity.get("converted_from", [])]
        for name, study in references:
            if study.get("labels"):
                rows.setdefault(f"ref:{name}", {"precision": name, "auc": {k: v.get("auc") for k, v in study["labels"].items()}})
        for model in parity.get("models", []):
            study = model["deployment"]["study"] if "deployment" in model else model["study"]
            rows.setdefault(model["sha256"], {"precision": model["precision"], "sha256": model["sha256"]}).update(
                file=model["file"],
                auc={label: e.get("auc") for label, e in study["labels"].items()},
                conversion=_verdict(model, "conversion"),
                deployment=_verdict(model, "deployment") if "deployment" in model else "",
            )
    if bench:
        by_path = {m["path"]: m for m in bench.get("models", [])}
        for row in bench.get("rows", []):
            if row.get("backend") != backend or row.get("status") != "ok":
                continue
            model = by_path.get(row.get("path"), {})
            key = model.get("sha256") or f"bench-unhashed:{row.get('path')}"  # an old bench JSON: never joined
            entry = rows.setdefault(key, {"precision": row["variant"], "sha256": model.get("sha256")})
            if "latency_ms" in entry and entry.get("threads", 0) >= row["threads"]:
                continue
            entry.update(size_mb=model.get("size_mb"), threads=row["threads"], latency_ms=row["study_latency_ms"]["p50"])
        base = next((r["latency_ms"] for r in rows.values() if r["precision"] == FP32 and r.get("latency_ms")), None)
        for entry in rows.values():
            if base and entry.get("latency_ms"):
                entry["speedup"] = base / entry["latency_ms"]
    for entry in rows.values():
        entry["shipped"] = bool(shipped_sha256) and entry.get("sha256") == shipped_sha256
    return list(rows.values())


def summary_table(parity_jsons: list, bench_json, shipped_sha256: str | None = None) -> str:
    """The table as text; missing inputs leave their columns empty."""
    parities = [p for p in (_load(path) for path in parity_jsons) if p]
    rows = summary_rows(parities, _load(bench_json), shipped_sha256=shipped_sha256)
    if not rows:
        return "no parity or bench results to summarise"
    head = (f"{'precision':<26} {'size MB':>7}  " + " ".join(f"{SHORT_NAMES[l]:>5}" for l in LABELS)
            + f"  {'convert':<7} {'deploy':<12} {'study ms':>8} {'speed-up':>8}")
    lines = [
        "study-level AUC on held-out studies; parity: conversion (vs the Keras model converted from) and deployment "
        "(vs the validated float model); latency p50 per 32-slice study, XNNPACK; * = shipped",
        head,
        "-" * len(head),
    ]
    for row in rows:
        auc = row.get("auc", {})
        cells = " ".join(f"{auc[l]:5.3f}" if auc.get(l) is not None else f"{'':>5}" for l in LABELS)
        size = f"{row['size_mb']:7.2f}" if row.get("size_mb") is not None else f"{'':>7}"
        latency = f"{row['latency_ms']:8.1f}" if row.get("latency_ms") else f"{'':>8}"
        speed = f"{row['speedup']:7.2f}x" if row.get("speedup") else f"{'':>8}"
        name = ("* " if row["shipped"] else "") + row["precision"]
        lines.append(f"{name:<26} {size}  {cells}  {row.get('conversion', ''):<7} {row.get('deployment', ''):<12} {latency} {speed}")
    return "\n".join(lines)
