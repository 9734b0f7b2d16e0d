"""Tables, profiles and result files of ``ich-edge bench`` (runtime tier, no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

from ich_edge.fileio import write_json_atomic

#: Said wherever per-operator times would go: the Python API of this runtime has no hook.
OP_PROFILE_UNAVAILABLE = (
    "per-operator times: not available from Python in this runtime (the LiteRT Interpreter "
    "has no profiler hook and CompiledModel exposes no profiling API); for per-op times run "
    "LiteRT's C++ benchmark_model with --enable_op_profiling=true. Shown instead: measured "
    "stage times, the nodes each backend took, and multiply-accumulates counted from the graph."
)


def _fmt(value, spec: str = ".2f", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _nodes(row: dict) -> str:
    nodes = row.get("nodes") or {}
    if "delegated_nodes" in nodes:
        return f"{nodes['delegated_nodes']}/{nodes['total_nodes']}"
    if "fully_accelerated" in nodes:
        return "all" if nodes["fully_accelerated"] else f"part/{nodes['total_nodes']}"
    return "-"


def format_table(result: dict) -> str:
    """The benchmark table (one row per model x backend x threads) and notes on failed rows."""
    machine, config = result["machine"], result["config"]
    versions = machine["versions"]
    runtime = f"ai-edge-litert {versions.get('ai-edge-litert')}" if versions.get("ai-edge-litert") else "tflite-runtime"
    emulated = machine.get("emulated")
    lines = [
        *([f"EMULATED CPU ({emulated}): these timings are not meaningful; only the outputs are"] if emulated else []),
        f"ich-edge bench: {machine['cpu_model']} ({machine['usable_cores']} cores usable), "
        + "".join(f"{name}, " for name in machine.get("gpus") or ())  # older result files have no "gpus"
        + f"{runtime}, "
        f"{config['study_slices']}-slice study, {config['runs']} runs after {config['warmup']} warm-up"
        + (f", x {config['rounds']} rounds (fresh processes, pooled)" if config.get("rounds", 1) > 1 else ""),
    ]
    models = {m["path"]: m for m in result["models"]}  # rows name their model by its path
    # Several files of one precision (e.g. two models' fp32): number them, with a legend below.
    variants = [m["variant"] for m in models.values()]
    numbered = {key: k + 1 for k, (key, m) in enumerate(models.items()) if variants.count(m["variant"]) > 1}
    labels = {key: f"{m['variant']} #{numbered[key]}" if key in numbered else m["variant"] for key, m in models.items()}
    width = max([10, *(len(label) for label in labels.values())])
    backend_width = max([10, *(len(row["backend"]) for row in result["rows"])])
    header = (
        f"{'variant':<{width}} {'backend':<{backend_width}} {'thr':>3}  {'status':<15} {'size MB':>7} {'AUC any':>7} {'AUC mean':>8} "
        f"{'init ms':>8} {'1st ms':>8} {'study ms p50':>12} {'± std':>8} {'slice ms':>8} {'speed-up':>8} "
        f"{'nodes':>7} {'peak MB':>7}"
    )
    lines += [header, "-" * len(header)]
    notes: dict[str, int] = {}  # reason -> note number; a reason shared by rows is printed once
    for row in result["rows"]:
        key = row["path"]
        scores = models[key].get("study_auc") or {}
        ok = row["status"] == "ok"
        status = row["status"]
        if not ok:
            reason = f"{row['backend']}: {row.get('reason', '')}"
            number = notes.setdefault(reason, len(notes) + 1)
            status = f"{status} [{number}]"
        study = row.get("study_latency_ms") or {}
        speedup = row.get("speedup_vs_fp32")
        lines.append(
            f"{labels[key]:<{width}} {row['backend']:<{backend_width}} {_fmt(row['threads'], 'd'):>3}  {status:<15} "
            f"{models[key]['size_mb']:>7.2f} {_fmt(scores.get('any'), '.4f'):>7} {_fmt(scores.get('mean'), '.4f'):>8} "
            f"{_fmt(row.get('init_ms'), '.1f'):>8} {_fmt(row.get('first_inference_ms'), '.1f'):>8} "
            f"{_fmt(study.get('p50')):>12} {_fmt(study.get('std')):>8} "
            f"{_fmt((row.get('slice_latency_ms') or {}).get('p50'), '.3f'):>8} "
            f"{(_fmt(speedup) + 'x') if speedup else '-':>8} {_nodes(row):>7} {_fmt(row.get('peak_rss_mb'), '.0f'):>7}"
        )
    lines.append("")
    lines.append(
        "study ms: encode every slice + classify the windows + stitch; speed-up: p50 of the fp32 file in the same "
        "folder / this p50 on the same backend and threads; nodes: taken by the backend / total; peak MB: worker "
        "process high-water mark."
    )
    lines += [f"#{number}: {key}" for key, number in numbered.items()]
    load = result.get("load_average_start_end")
    if load and load[0]:
        busy = any(entry and entry[0] > machine["usable_cores"] for entry in load)
        lines.append(
            f"load average (1/5/15 min) at start {'/'.join(f'{x:.2f}' for x in load[0])}, at end "
            f"{'/'.join(f'{x:.2f}' for x in load[1])} on {machine['usable_cores']} cores"
            + (": above the core count, other processes share the CPU and wall times are inflated" if busy else "")
        )
    outliers = [r for r in result["rows"] if r["status"] == "ok" and r["study_latency_ms"]["outliers"]]
    for row in outliers:
        stats = row["study_latency_ms"]
        lines.append(
            f"outliers: {labels[row['path']]} {row['backend']} threads={row['threads']}: {stats['outliers']} of "
            f"{stats['n']} study runs above {stats['outlier_limit']:.2f} ms (max {stats['max']:.2f} ms), kept in mean/std"
        )
    return "\n".join(lines + [f"[{number}] {reason}" for reason, number in notes.items()])


def _macs_text(macs: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if macs >= scale:
            return f"{macs / scale:.2f} {unit}"
    return f"{macs:.0f}"


def format_profile(result: dict) -> str:
    """Where the time goes, per model and backend, as far as the Python runtime can tell."""
    from ich_edge.runtime.description import format_op_summary, op_summary

    lines = [OP_PROFILE_UNAVAILABLE, ""]
    models = {str(m["path"]): m for m in result["models"]}  # by path: two folders may hold files of one name
    names = [m["file"] for m in result["models"]]
    slices = result["config"]["study_slices"]
    shown_ops = set()
    for row in result["rows"]:
        if row["status"] != "ok":
            continue
        model = models[str(row["path"])]
        study = row["study_latency_ms"]["p50"]
        stages = row["stage_latency_ms"]
        encode, classify = stages["encode"]["p50"], stages["classify"]["p50"]
        shown = row["file"] if names.count(row["file"]) == 1 else f"{Path(row['path']).parent.name}/{row['file']}"
        lines.append(f"{shown} on {row['backend']}, {row['threads']} thread(s):")
        lines.append(
            f"  study p50 {study:.2f} ms; timed alone: encode {slices} slices {encode:.2f} ms "
            f"({100 * encode / study:.0f}%), classify {row['study_windows']} windows {classify:.2f} ms "
            f"({100 * classify / study:.0f}%)"
        )
        for key, info in (row.get("nodes") or {}).get("signatures", {}).items():
            left = ", ".join(f"{op} x{n}" for op, n in info["not_delegated"].items()) or "none"
            taken = f"{info['delegated_nodes']}/{info['total_nodes']} nodes delegated"
            lines.append(f"  {key}: {taken}; on builtin kernels: {left}")
        macs = (model.get("macs") or {}).get("study")
        if macs:
            per_sig = model["macs"]["per_signature"]
            lines.append(
                f"  MACs per study {_macs_text(macs)} (encode {_macs_text(per_sig['encode']['macs'])} per slice, "
                f"classify {_macs_text(per_sig['classify']['macs'])} per window); "
                f"achieved {macs / (study / 1e3) / 1e9:.2f} GMAC/s"
            )
        if str(row["path"]) not in shown_ops:
            shown_ops.add(str(row["path"]))
            try:
                summary = format_op_summary(op_summary(model["path"]))
            except Exception as err:  # a profile must not fail on a summary it could not build
                summary = f"op summary unavailable: {err}"
            lines += ["  " + line for line in summary.splitlines()]
        lines.append("")
    return "\n".join(lines).rstrip()


def write_result(result: dict, path: str | Path) -> Path:
    """Write a result document as JSON, atomically."""
    path = Path(path)
    write_json_atomic(path, result)
    return path


def relative_paths(value, root: str | Path | None = None):
    """``value`` with absolute paths made relative to ``root`` (the current folder by default):
    :func:`ich_edge.runtime.bench.envelope.portable`."""
    import os

    from ich_edge.runtime.bench.envelope import portable

    return portable(value, root or os.getcwd())


def write_results(result: dict, prefix: str, results_dir: str | Path | None, json_path: str | Path | None = None) -> list[Path]:
    """``ich-edge bench``'s result files: :func:`ich_edge.runtime.bench.envelope.write_results`,
    paths made relative to the current folder."""
    import os

    from ich_edge.runtime.bench.envelope import write_results as write

    return write(result, prefix, results_dir, json_path, root=os.getcwd())
