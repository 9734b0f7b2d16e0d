"""What ``ich-edge parity`` writes: report.json, report.md and roc_study.png."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ich_edge import LABELS
from ich_edge.fileio import mark_output, write_atomic_bytes, write_json_atomic
from ich_edge.metrics import log_loss_note
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
        parts.append(f"study AUC drop <= {gates['max_auc_drop']:g}")
    if gates.get("max_auc_drop_ci95") is not None:
        parts.append(f"paired 95% CI of the change above -{gates['max_auc_drop_ci95']:g}")
    if gates.get("min_agreement") is not None:
        parts.append(f"study decision agreement >= {100 * gates['min_agreement']:g}%")
    if gates.get("max_lost_detections") is not None:
        parts.append(f"<= {gates['max_lost_detections']} bleeding studies flagged by the reference missed")
    return "; ".join(parts) or "none"


def _worst(question: dict) -> tuple[str, str]:
    study = question["study"]["labels"]
    deltas = [(e["auc_delta"], label) for label, e in study.items() if e["auc_delta"] is not None]
    agreements = [(e["agreement"], label) for label, e in study.items() if e["agreement"] is not None]
    worst = min(deltas) if deltas else None
    agree = min(agreements) if agreements else None
    return (f"{worst[0]:+.4f} {worst[1]}" if worst else "n/a", f"{100 * agree[0]:.1f}% {agree[1]}" if agree else "n/a")


def format_summary(report: dict) -> str:
    """A few lines for the terminal: each model's two verdicts with their worst numbers."""
    data, evidence = report["data"], report["evidence"]
    lines = [
        f"parity on {data['studies']} studies / {data['labelled_slices']} labelled slices ({data['selection']}); "
        f"bootstrap {report['bootstrap']['replicates']} replicates by study",
        f"evidence: {'sufficient' if evidence['sufficient'] else 'INSUFFICIENT: ' + '; '.join(evidence['reasons'])}",
        f"{'model':<36} {'question':<11} {'verdict':<12} {'max|dp|':>9}  {'worst study dAUC':<24} {'lowest agreement':<22} lost",
    ]
    for model in report["models"]:
        for key in ("conversion", "deployment"):
            question = model[key]
            diffs = [e["max_abs_diff"] for lvl in ("slice", "study") for e in question[lvl]["labels"].values()
                     if e["max_abs_diff"] is not None]
            worst, agree = _worst(question)
            lost = sum(e["lost_detections"] for e in question["study"]["labels"].values())
            name = f"{model['file']} ({model['precision']})" if key == "conversion" else ""
            lines.append(
                f"{name:<36} {key:<11} {question['verdict']:<12} {(max(diffs) if diffs else float('nan')):>9.2e}  "
                f"{worst:<24} {agree:<22} {lost}"
            )
    lines.append(f"verdict: {report['verdict']}")
    return "\n".join(lines)


def _question_lines(model: dict, key: str, title: str) -> list[str]:
    question = model[key]
    lines = [f"  - {title} vs `{question['reference']}`: **{question['verdict']}** (gates: {_gates_text(question['gates'])})"]
    lines += [f"    - FAIL {failure}" for failure in question["failures"]]
    lines += [f"    - not evaluable: {line}" for line in question["not_evaluable"]]
    return lines


def _table(title: str, ref: dict, result: dict) -> list[str]:
    lines = [
        "",
        f"### {title}",
        "",
        f"RSNA weighted log loss: reference {_num(ref['rsna_log_loss'])}, this model {_num(result['rsna_log_loss'])} "
        f"(n = {ref['n']}){log_loss_note(list(ref['labels']))}",
        "",
        "| label | positives | AUC reference [95% CI] | AUC model [95% CI] | change [paired 95% CI] | "
        "log loss ref / model | max abs diff | mean abs diff | agreement | lost / added positive decisions | "
        "lost bleeding studies | sensitivity ref -> model |",
        "|---|---:|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for label in ref["labels"]:
        r, m = ref["labels"][label], result["labels"][label]
        lines.append(
            f"| {label} | {ref['positives'][label]} | {_num(r['auc'])}{_ci(r['auc_ci95'])} | "
            f"{_num(m['auc'])}{_ci(m['auc_ci95'])} | {_num(m['auc_delta'], '+.4f')}"
            f"{_ci(m['auc_delta_ci95'], '+.4f')} | {_num(r['log_loss'])} / {_num(m['log_loss'])} | "
            f"{_num(m['max_abs_diff'], '.2e')} | {_num(m['mean_abs_diff'], '.2e')} | "
            f"{_num(None if m['agreement'] is None else 100 * m['agreement'], '.1f')}% | "
            f"{m['lost_positives']} / {m['new_positives']} | {m['lost_detections']} | "
            f"{_num(m['reference_sensitivity'], '.3f')} -> {_num(m['sensitivity'], '.3f')} |"
        )
    return lines


def format_markdown(report: dict) -> str:
    """report.md: data, evidence, both questions' verdicts, then one table per model, question and level."""
    data, boot, evidence = report["data"], report["bootstrap"], report["evidence"]
    counts = ", ".join(f"{label} {e['positives']}" for label, e in evidence["labels"].items())
    lines = [
        "# TFLite parity report",
        "",
        f"**Verdict: {report['verdict']}**",
        "",
        f"- Validated reference (deployment parity): `{report['reference']['path']}` at its thresholds.json",
        *[f"- Converted from (conversion parity): `{s['path']}`{' (QAT, its own validated thresholds)' if s['quantized'] else ''}"
          for s in report.get("converted_from", [])],
        f"- Data: `{data['cache']}`: {data['selection']}; {data['series']} series, {data['studies']} studies, "
        f"{data['labelled_slices']} labelled slices",
        *([f"- Labels: {', '.join(report['labels'])} (the model's outputs; the other labels are absent, not compared)"]
          if set(report.get("labels") or LABELS) != set(LABELS) else []),
        f"- Evidence: a verdict needs >= {evidence['min_studies']} studies and, per gated label "
        f"({', '.join(evidence['gated_labels'])}), >= {evidence['min_positive_studies']} positive and as many negative "
        f"studies; positive studies here: {counts}. "
        + ("Sufficient." if evidence["sufficient"] else "**Insufficient**: " + "; ".join(evidence["reasons"]) + "."),
        "- Whole studies through the deployment rule (encode each slice once, classify windows, stitch; "
        "study probability = max over slices).",
        f"- 95% intervals: percentile bootstrap with {boot['replicates']} replicates resampling studies (slice level: "
        f"all slices of each drawn study; a label's interval uses the replicates holding both classes); "
        f"the change versus the reference is paired (same replicates).",
        "- Decisions: each model at its own stored thresholds (Keras: its run's thresholds.json, chosen on "
        f"validation for {_num(report['reference']['thresholds'].get('specificity'), 'g')} specificity; a .tflite: "
        "the thresholds it carries). 'Lost bleeding studies': truly positive studies the reference flags and "
        "the model does not.",
        "- Two questions: **conversion** (the file against the Keras model it was converted from; gates from the "
        "precision recipe) and **deployment** (the file against the validated float model; gates of "
        "`ich_edge.training.parity.gates.DEPLOYMENT_GATES`, reasoning in that module).",
        "",
        "## Verdicts",
        "",
    ]
    for note in report.get("notes", []):
        lines.insert(lines.index("## Verdicts"), f"- note: {note}")
    for model in report["models"]:
        lines.append(f"- **{model['verdict']}** `{model['file']}` ({model['precision']}), sha256 `{model['sha256']}`")
        lines += _question_lines(model, "conversion", "conversion")
        lines += _question_lines(model, "deployment", "deployment")
    refs = {report["reference"]["path"]: report["reference_metrics"]}
    refs.update({s["path"]: s["metrics"] for s in report.get("converted_from", [])})
    for model in report["models"]:
        lines += ["", f"## {model['file']} ({model['precision']})"]
        for key in ("deployment", "conversion"):
            question = model[key]
            if key == "conversion" and question["reference"] == model["deployment"]["reference"]:
                lines += ["", "Conversion parity compares with the same Keras model as deployment parity: same tables."]
                continue
            for level in ("study", "slice"):
                lines += _table(f"{key} vs `{question['reference']}`, {level} level", refs[question["reference"]][level],
                                question[level])
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
    models = [("validated reference (Keras float)", curves["reference"])] + list(zip(names, curves["variants"]))
    styles = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1))]
    colors = ["black", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    labels = list(curves.get("labels") or LABELS)
    cols = min(3, len(labels))
    rows = -(-len(labels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4.8 * rows), constrained_layout=True, squeeze=False)
    for ax in axes.ravel()[len(labels):]:
        ax.set_visible(False)
    for i, (label, ax) in enumerate(zip(labels, axes.ravel())):
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
    fig.suptitle("Study-level ROC: validated Keras model vs TFLite files (deployment parity: curves that overlap agree)", fontsize=14)
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
        mark_output(out_dir, "parity")
        write_json_atomic(out_dir / REPORT_JSON, report)
        text = format_markdown(report).encode("utf-8")
        write_atomic_bytes(out_dir / REPORT_MD, lambda handle: handle.write(text))
        names = [f"{m['precision']} ({m['file']})" for m in report["models"]]
        written += [out_dir / REPORT_JSON, out_dir / REPORT_MD, plot_roc(curves, names, out_dir / ROC_PNG)]
    if json_path is not None:
        write_json_atomic(json_path, report)
        written.append(Path(json_path))
    return written
