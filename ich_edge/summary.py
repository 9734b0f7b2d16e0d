"""The demo's closing table: one row per precision, joining parity and bench results.

Columns: precision, size (MB), study AUC per label (from ``ich-edge parity``), the parity
verdict, study latency (p50, XNNPACK, from ``ich-edge bench``) and the speed-up versus fp32.
"""

from __future__ import annotations

import json
from pathlib import Path

from ich_edge import LABELS, SHORT_NAMES


def _load(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def summary_rows(parities: list[dict], bench: dict | None, backend: str = "xnnpack") -> list[dict]:
    """Rows keyed by precision from parity reports and a bench result (either may be missing)."""
    rows: dict[str, dict] = {}
    for parity in parities:
        ref = parity.get("reference_metrics", {}).get("study", {}).get("labels", {})
        if ref:
            name = "keras qat (ref)" if parity.get("reference", {}).get("quantized") else "keras float (ref)"
            rows[name] = {"precision": name, "auc": {k: v.get("auc") for k, v in ref.items()}}
        for model in parity.get("models", []):
            rows.setdefault(model["precision"], {"precision": model["precision"]}).update(
                auc={label: e.get("auc") for label, e in model["study"]["labels"].items()},
                verdict="PASS" if model["passed"] else "FAIL",
            )
    if bench:
        sizes = {m["variant"]: m["size_mb"] for m in bench.get("models", [])}
        for row in bench.get("rows", []):
            if row.get("backend") != backend or row.get("status") != "ok":
                continue
            entry = rows.setdefault(row["variant"], {"precision": row["variant"]})
            if "latency_ms" in entry and entry.get("threads", 0) >= row["threads"]:
                continue
            entry.update(size_mb=sizes.get(row["variant"]), threads=row["threads"],
                         latency_ms=row["study_latency_ms"]["p50"])
        base = rows.get("fp32", {}).get("latency_ms")
        for entry in rows.values():
            if base and entry.get("latency_ms"):
                entry["speedup"] = base / entry["latency_ms"]
    return list(rows.values())


def summary_table(parity_jsons: list[str | Path], bench_json: str | Path) -> str:
    """The table as text; missing inputs leave their columns empty."""
    parities = [p for p in (_load(path) for path in parity_jsons) if p]
    rows = summary_rows(parities, _load(bench_json))
    if not rows:
        return "no parity or bench results to summarise"
    head = (f"{'precision':<18} {'size MB':>7}  " + " ".join(f"{SHORT_NAMES[l]:>5}" for l in LABELS)
            + f"  {'parity':<6} {'study ms':>8} {'speed-up':>8}")
    lines = ["study-level AUC on held-out studies; latency p50 per 32-slice study, XNNPACK", head, "-" * len(head)]
    for row in rows:
        auc = row.get("auc", {})
        cells = " ".join(f"{auc[l]:5.3f}" if auc.get(l) is not None else f"{'':>5}" for l in LABELS)
        size = f"{row['size_mb']:7.2f}" if row.get("size_mb") is not None else f"{'':>7}"
        latency = f"{row['latency_ms']:8.1f}" if row.get("latency_ms") else f"{'':>8}"
        speed = f"{row['speedup']:7.2f}x" if row.get("speedup") else f"{'':>8}"
        lines.append(f"{row['precision']:<18} {size}  {cells}  {row.get('verdict', ''):<6} {latency} {speed}")
    return "\n".join(lines)
