"""What ``ich-edge parity`` writes: report.json, report.md and roc_study.png."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ich_edge import LABELS
from ich_edge.fileio import write_atomic_bytes, write_json_atomic
from ich_edge.errors import MissingDependencyError

REPORT_JSON, REPORT_MD, ROC_PNG = "report.json", "report.md", "roc_study.png"


def _num(value, spec: str = ".4f") -> str:
    return "n/a" if value is None else format(value, spec)


def _ci(pair, spec: str = ".4f") -> str:
    if not pair or pair[0] is None:
        return ""
    return f" [{format(pair[0], spec)}, {format(pair[1], spec)}]"


def _gates_text(gates: dict) -> str:
    parts = []
    if gates.get("max_abs_diff") is not None:
        parts.append(f"max |p - p_ref| <= {gates['max_abs_diff']:g}")
    if gates.get("max_auc_drop") is not None:
        parts.append(f"study AUC drop <= {gates['max_auc_drop']:g} for every label")
    if gates.get("min_agreement") is not None:
        parts.append(f"study decision agreement >= {100 * gates['min_agreement']:g}% for every label")
    return "; ".join(parts) or "none"


def format_summary(report: dict) -> str:
    """A few lines for the terminal: one verdict per model with its worst numbers."""
    data = report["data"]
    lines = [
        f"parity on {data['studies']} studies / {data['labelled_slices']} labelled slices ({data['selection']}); "
        f"bootstrap {report['bootstrap']['replicates']} replicates by study",
        f"{'model':<40} {'verdict':<7} {'max|dp|':>9}  {'worst study dAUC':<25} {'lowest study agreement':<24}",
    ]
    for model in report["models"]:
        study = model["study"]["labels"]
        diffs = [e["max_abs_diff"] for lvl in ("slice", "study") for e in model[lvl]["labels"].values() if e["max_abs_diff"] is not None]
        deltas = [(e["auc_delta"], label) for label, e in study.items() if e["auc_delta"] is not None]
        worst = min(deltas) if deltas else None
        agreement = min((e["agreement"], label) for label, e in study.items() if e["agreement"] is not None)
        agree_text = f"{100 * agreement[0]:.1f}% {agreement[1]}"
        lines.append(
            f"{model['file'] + ' (' + model['precision'] + ')':<40} {'PASS' if model['passed'] else 'FAIL':<7} "
            f"{max(diffs):>9.2e}  {(f'{worst[0]:+.4f} {worst[1]}' if worst else 'n/a'):<25} {agree_text:<24}"
        )
    return "\n".join(lines)


def format_markdown(report: dict) -> str:
    """report.md: data, gates and verdicts, then one table per model and level."""
    data, boot = report["data"], report["bootstrap"]
    lines = [
        "# TFLite parity report",
        "",
        f"- Reference: `{report['reference']['path']}`{' (QAT)' if report['reference']['quantized'] else ''}",
        f"- Data: `{data['cache']}`: {data['selection']}; {data['series']} series, {data['studies']} studies, "
        f"{data['labelled_slices']} labelled slices",
        "- Whole studies through the deployment rule (encode each slice once, classify windows, stitch; "
        "study probability = max over slices).",
        f"- 95% intervals: percentile bootstrap with {boot['replicates']} replicates resampling studies (slice level: "
        f"all slices of each drawn study; a label's interval uses the replicates holding both classes); "
        f"the change versus the reference is paired (same replicates).",
        f"- Decisions: each model at its own stored thresholds (reference: the run's thresholds.json, chosen on "
        f"validation for {_num(report['reference']['thresholds'].get('specificity'), 'g')} specificity).",
        "",
        "## Verdicts",
        "",
    ]
    for model in report["models"]:
        verdict = "PASS" if model["passed"] else "FAIL"
        lines.append(f"- **{verdict}** `{model['file']}` ({model['precision']}): gates {_gates_text(model['gates'])}")
        lines += [f"  - {failure}" for failure in model["failures"]]
        lines += [f"  - warning: {warning}" for warning in model["warnings"]]
    ref = report["reference_metrics"]
    for model in report["models"]:
        for level in ("study", "slice"):
            result = model[level]
            lines += [
                "",
                f"## {model['file']} ({model['precision']}), {level} level",
                "",
                f"RSNA weighted log loss: reference {_num(ref[level]['rsna_log_loss'])}, "
                f"this model {_num(result['rsna_log_loss'])} (n = {ref[level]['n']})",
                "",
                "| label | positives | AUC reference [95% CI] | AUC model [95% CI] | change [paired 95% CI] | "
                "log loss ref / model | max abs diff | mean abs diff | agreement | lost / added positives |",
                "|---|---:|---|---|---|---|---:|---:|---:|---:|",
            ]
            for label in LABELS:
                r, m = ref[level]["labels"][label], result["labels"][label]
                lines.append(
                    f"| {label} | {ref[level]['positives'][label]} | {_num(r['auc'])}{_ci(r['auc_ci95'])} | "
                    f"{_num(m['auc'])}{_ci(m['auc_ci95'])} | {_num(m['auc_delta'], '+.4f')}"
                    f"{_ci(m['auc_delta_ci95'], '+.4f')} | {_num(r['log_loss'])} / {_num(m['log_loss'])} | "
                    f"{_num(m['max_abs_diff'], '.2e')} | {_num(m['mean_abs_diff'], '.2e')} | "
                    f"{_num(None if m['agreement'] is None else 100 * m['agreement'], '.1f')}% | "
                    f"{m['lost_positives']} / {m['new_positives']} |"
                )
    return "\n".join(lines) + "\n"


def plot_roc(curves: dict, names: list[str], path: Path) -> Path:
    """One panel per label: study-level ROC of the reference and every variant, overlaid."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise MissingDependencyError("the ROC figure needs matplotlib: pip install 'ich-edge[train]'") from err
    from ich_edge.metrics import roc_auc, roc_curve

    y = np.asarray(curves["study_true"])
    models = [("reference (Keras)", curves["reference"])] + list(zip(names, curves["variants"]))
    styles = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1))]
    colors = ["black", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 9.6), constrained_layout=True)
    for i, (label, ax) in enumerate(zip(LABELS, axes.ravel())):
        positives, negatives = int(y[:, i].sum()), int((1 - y[:, i]).sum())
        ax.plot([0, 1], [0, 1], color="0.8", lw=1)
        for k, (name, scores) in enumerate(models):
            if positives and negatives:
                fpr, tpr, _ = roc_curve(y[:, i], scores[:, i])
                auc = roc_auc(y[:, i], scores[:, i])
                ax.plot(fpr, tpr, linestyle=styles[k % len(styles)], color=colors[k % len(colors)],
                        lw=2.4 if k == 0 else 1.6, label=f"{name}: {auc:.4f}")
        if not (positives and negatives):
            ax.text(0.5, 0.5, "not defined:\nonly one class", ha="center", va="center", fontsize=12)
        ax.set_title(f"{label}  ({positives} pos / {negatives} neg studies)", fontsize=13)
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.set_xlabel("1 - specificity", fontsize=11)
        ax.set_ylabel("sensitivity", fontsize=11)
        if positives and negatives:
            ax.legend(loc="best", fontsize=9, title="study AUC", title_fontsize=9, framealpha=0.8)
    fig.suptitle("Study-level ROC: Keras reference vs TFLite variants (curves that overlap are in parity)", fontsize=14)
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_atomic_bytes(Path(path), lambda handle: handle.write(buffer.getvalue()))
    return Path(path)


def write_outputs(report: dict, curves: dict, out_dir: Path | None, json_path: Path | None) -> list[Path]:
    """Write report.json, report.md and the ROC PNG into ``out_dir``, and/or the JSON to ``json_path``."""
    written = []
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / REPORT_JSON, report)
        text = format_markdown(report).encode("utf-8")
        write_atomic_bytes(out_dir / REPORT_MD, lambda handle: handle.write(text))
        names = [f"{m['precision']} ({m['file']})" for m in report["models"]]
        written += [out_dir / REPORT_JSON, out_dir / REPORT_MD, plot_roc(curves, names, out_dir / ROC_PNG)]
    if json_path is not None:
        write_json_atomic(json_path, report)
        written.append(Path(json_path))
    return written
