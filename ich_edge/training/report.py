"""The training report: report.json, report.md and PNG plots in RUN_DIR.

``report.json`` holds everything; ``report.md`` shows, per evaluated set (validation, and
test when given), one row per label: slice AUC, study AUC with its bootstrap 95% CI,
sensitivity at 90% specificity, the trivial baseline's study AUC, and on the test set the
sensitivity/specificity at the thresholds chosen on validation. Plots: ``loss.png`` (train
and validation loss per epoch) and ``roc_<set>.png`` (study-level ROC per label, model vs
baseline). matplotlib is imported only inside the drawing functions.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from ich_edge import LABELS
from ich_edge.fileio import write_atomic_bytes, write_json_atomic
from ich_edge.metrics import log_loss_note, roc_curve

#: Targets of issue #3 on held-out synthetic studies (study-level ROC AUC).
TARGET_AUC_ANY = 0.95
TARGET_AUC_SUBTYPE = 0.90


def fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def targets_met(study_auc: dict) -> dict:
    """Check the issue's study-level AUC targets: any >= 0.95, each subtype >= 0.90 (the labels of ``study_auc``)."""
    checks = {}
    for label in study_auc:
        target = TARGET_AUC_ANY if label == "any" else TARGET_AUC_SUBTYPE
        auc = study_auc.get(label)
        checks[label] = {"target": target, "auc": auc, "met": auc is not None and auc >= target}
    return {"labels": checks, "all_met": all(c["met"] for c in checks.values())}


def _section_table(name: str, section: dict) -> list[str]:
    model, baseline = section["model"], section.get("baseline")
    study, slice_ = model["study"], model["slice"]
    with_thresholds = "at_thresholds" in study
    header = "| label | slice AUC | study AUC (95% CI) | study sens @ {:.0%} spec | baseline study AUC |".format(
        study["specificity"]
    )
    rule = "|---|---|---|---|---|"
    if with_thresholds:
        header += " study sens / spec at validation thresholds |"
        rule += "---|"
    lines = [f"## {name} ({section['n_studies']} studies, {section['n_series']} series, {slice_['n']} labelled slices)", "", header, rule]
    for label in study["auc"]:
        low, high = study.get("auc_ci95", {}).get(label, [None, None])
        base = fmt(baseline["study"]["auc"][label]) if baseline else "n/a"
        ci = f" ({fmt(low)} to {fmt(high)})" if low is not None else ""
        row = (
            f"| {label} | {fmt(slice_['auc'][label])} | {fmt(study['auc'][label])}{ci} "
            f"| {fmt(study['sensitivity_at_specificity'][label])} | {base} |"
        )
        if with_thresholds:
            at = study["at_thresholds"][label]
            row += f" {fmt(at['sensitivity'])} / {fmt(at['specificity'])} |"
        lines.append(row)
    lines.append("")
    lines.append(
        f"RSNA weighted log loss: slice {fmt(slice_['rsna_log_loss'], 4)}, study {fmt(study['rsna_log_loss'], 4)}"
        + (f" (baseline slice {fmt(baseline['slice']['rsna_log_loss'], 4)})" if baseline else "")
        + log_loss_note(list(study["auc"]))
    )
    lines.append("")
    return lines


def render_markdown(report: dict) -> str:
    """The human-readable report."""
    run = report["run"]
    lines = [
        "# ich-edge training report",
        "",
        f"- epochs run: {run['epochs_run']} of {run['epochs_planned']} ({run['stopped']}); best epoch {run['best_epoch']}"
        f" (validation loss {fmt(run['best_val_loss'], 4)})",
        f"- train wall time: {run['train_seconds'] / 60:.1f} min, mean epoch {run['mean_epoch_seconds']:.1f} s"
        f" ({fmt(run.get('mean_epoch_cpu_seconds'), 0)} CPU s)",
        f"- model: {report['model']['backbone']} backbone, width {report['model']['width']}, "
        f"{report['model']['input_size_px']} px, {report['model']['rnn']} head; "
        f"windows of {report['sequence']['window_slices']} slices, stride {report['sequence']['stride_slices']}",
        f"- baseline: {report.get('baseline_note', 'ich_edge.baseline')}",
    ]
    labels = report.get("labels") or list(LABELS)
    if set(labels) != set(LABELS):
        lines.append(f"- labels: {', '.join(labels)} (the model's outputs; the other labels are absent, not scored)")
    lines += [
        "",
    ]
    for key, title in (("validation", "Validation"), ("test", "Test, held-out studies")):
        if key in report:
            lines += _section_table(title, report[key])
    if "targets" in report:
        t = report["targets"]
        status = "all met" if t["all_met"] else "NOT all met"
        lines.append(f"## Targets on {t['set']} studies: {status}")
        lines.append("")
        for label, c in t["labels"].items():
            lines.append(f"- {label}: study AUC {fmt(c['auc'])} (target >= {c['target']:.2f}) {'ok' if c['met'] else 'MISSED'}")
        lines.append("")
    lines.append("Plots: " + ", ".join(report.get("plots", [])))
    return "\n".join(lines) + "\n"


def nan_to_none(value):
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_none(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_report(run_dir: str | Path, report: dict, preface: str = "") -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` (``preface`` first, e.g. QAT's comparison) atomically into ``run_dir``."""
    run_dir = Path(run_dir)
    report = nan_to_none(report)
    json_path, md_path = run_dir / "report.json", run_dir / "report.md"
    write_json_atomic(json_path, report)
    text = (preface + render_markdown(report)).encode("utf-8")
    write_atomic_bytes(md_path, lambda handle: handle.write(text))
    return json_path, md_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_atomic_bytes(path, lambda handle: handle.write(buffer.getvalue()))


def plot_losses(history: list[dict], path: str | Path, positive_weight: float = 1.0) -> Path:
    """Train and validation loss per epoch (RSNA-weighted binary cross-entropy, positives x ``positive_weight``)."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(epochs, [h["loss"] for h in history], "o-", label="train (augmented)")
    ax.plot(epochs, [h["val_loss"] for h in history], "s-", label="validation")
    best = min(history, key=lambda h: h["val_loss"]) if history else None
    if best:
        ax.axvline(best["epoch"], color="grey", linestyle=":", label=f"best epoch {best['epoch']}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("RSNA-weighted log loss (any x2" + (f", positives x{positive_weight:g})" if positive_weight != 1.0 else ")"))
    ax.set_title("Training and validation loss")
    if len(epochs) <= 30:
        ax.set_xticks(epochs)
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(path)
    _save_figure(fig, path)
    plt.close(fig)
    return path


def plot_roc(study_true: np.ndarray, model_scores: np.ndarray, baseline_scores, path: str | Path, title: str, model_metrics: dict, baseline_metrics: dict | None) -> Path:
    """Study-level ROC curves, one panel per label of the model (``model_metrics["auc"]``), model vs trivial baseline."""
    plt = _pyplot()
    labels = list(model_metrics["auc"])
    cols = min(3, len(labels))
    rows = -(-len(labels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), sharex=True, sharey=True, squeeze=False)
    for ax in axes.ravel()[len(labels):]:
        ax.set_visible(False)
    for i, (label, ax) in enumerate(zip(labels, axes.ravel())):
        y = study_true[:, i]
        positives, negatives = int(y.sum()), int(len(y) - y.sum())
        ax.plot([0, 1], [0, 1], color="lightgrey", linestyle="--", linewidth=1)
        if positives and negatives:
            fpr, tpr, _ = roc_curve(y, model_scores[:, i])
            low, high = model_metrics.get("auc_ci95", {}).get(label, [None, None])
            ci = f" ({fmt(low, 2)}-{fmt(high, 2)})" if low is not None else ""
            ax.plot(fpr, tpr, color="C0", linewidth=2, label=f"model AUC {fmt(model_metrics['auc'][label])}{ci}")
            if baseline_scores is not None:
                fpr, tpr, _ = roc_curve(y, baseline_scores[:, i])
                ax.plot(fpr, tpr, color="C1", linewidth=1.5, label=f"baseline AUC {fmt(baseline_metrics['auc'][label])}")
            spec = model_metrics["specificity"]
            ax.axvline(1 - spec, color="grey", linestyle=":", linewidth=1, label=f"{spec:.0%} specificity")
            ax.legend(loc="lower right", fontsize=9)
        else:
            ax.text(0.5, 0.5, "one class only", ha="center", va="center")
        ax.set_title(f"{label} ({positives} pos / {negatives} neg)")
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("1 - specificity")
    for ax in axes[:, 0]:
        ax.set_ylabel("sensitivity")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    _save_figure(fig, path)
    plt.close(fig)
    return path


def baseline_scores(series_list: list, preprocess_config, num_labels: int = len(LABELS)) -> list[np.ndarray] | None:
    """The trivial baseline's per-slice score, repeated for ``num_labels`` labels; None if unavailable.

    The baseline scores "hemorrhage-like" pixels without telling subtypes apart, so one score
    per slice serves every label.
    """
    try:
        from ich_edge.baseline import baseline_slice_scores
    except ImportError:
        return None
    scores = []
    for series in series_list:
        score = np.asarray(baseline_slice_scores(series.images, preprocess_config), np.float64).reshape(-1, 1)
        scores.append(np.repeat(score, num_labels, axis=1))
    return scores


def validation_thresholds(metrics: dict) -> dict:
    """``{"slice": {label: t}, "study": {label: t}}``: the thresholds chosen on validation (at the run's specificity)."""
    return {level: dict(metrics[level]["threshold_at_specificity"]) for level in ("slice", "study")}


def evaluate_set(run, series_list, config, thresholds=None, baseline_thresholds=None) -> tuple[dict, dict, dict | None]:
    """Evaluate ``run``'s model (and the trivial baseline) on ``series_list``, whole studies.

    Returns ``(section, levels, baseline_levels)``: the report section (``n_studies``,
    ``n_series``, ``model`` and ``baseline`` metrics; with ``thresholds`` also sensitivity
    and specificity at them) and the slice/study truth and scores for the ROC plots.
    """
    from ich_edge.training.evaluate import metrics_from_scores, predict_studies

    labels = run.labels
    scores = predict_studies(run.encoder, run.head, series_list, run.sequence_config)
    model_metrics, levels = metrics_from_scores(series_list, scores, config.specificity, thresholds, labels=labels)
    base = baseline_scores(series_list, run.preprocess_config, len(labels))
    section = {
        "n_studies": len({s.study_uid for s in series_list}),
        "n_series": len(series_list),
        "model": model_metrics,
        "baseline": None,
    }
    base_levels = None
    if base is not None:
        section["baseline"], base_levels = metrics_from_scores(series_list, base, config.specificity, baseline_thresholds,
                                                               labels=labels)
    return section, levels, base_levels


def validate_and_choose_thresholds(run, val_series, config, choose=None) -> tuple[dict, dict, dict | None, dict]:
    """The validation step of ``ich-edge train`` and ``ich-edge qat``: evaluate, choose thresholds, write them.

    Evaluates ``run`` on its validation studies, chooses each label's slice and study
    threshold at ``config.specificity`` on them, and writes ``thresholds.json`` into
    ``run.path``. A QAT model is a new model, so ``ich-edge qat`` calls this for it too;
    ``choose(section, levels)`` replaces the specificity rule when given (qat's rule of
    agreeing with the validated model). Returns ``(section, levels, baseline_levels, thresholds)``.
    """
    from ich_edge.training.run import write_thresholds

    section, levels, base_levels = evaluate_set(run, val_series, config)
    thresholds = validation_thresholds(section["model"]) if choose is None else choose(section, levels)
    write_thresholds(Path(run.path), config.specificity, thresholds["slice"], thresholds["study"])
    return section, levels, base_levels, thresholds


def _roc_plots(run_dir: Path, sets: list, model_name: str) -> list[str]:
    """``roc_<set>.png`` for each ``(name, section, levels, baseline_levels)``; returns the file names."""
    names = []
    for name, section, levels, base_levels in sets:
        of = f" of the {model_name}" if model_name else ""
        path = plot_roc(
            levels["study_true"],
            levels["study_scores"],
            None if base_levels is None else base_levels["study_scores"],
            run_dir / f"roc_{name}.png",
            f"Study-level ROC{of}, {name} ({section['n_studies']} studies)",
            section["model"]["study"],
            None if section["baseline"] is None else section["baseline"]["study"],
        )
        names.append(path.name)
    return names


def finish_run(run, val_series, config, summary: dict, log, test_series=None, history=None, loss_weight: float = 1.0,
               extra: dict | None = None, model_name: str = "", targets: bool = True, preface=None,
               choose_thresholds=None) -> dict:
    """The last step of ``ich-edge train`` and ``ich-edge qat``: thresholds, report and plots of a saved model.

    Validates ``run`` (a :class:`ich_edge.training.run.Run` holding the weights saved as
    model.keras) on ``val_series`` and writes the thresholds chosen there
    (:func:`validate_and_choose_thresholds`); evaluates ``test_series`` at them when given;
    draws ``loss.png`` from ``history`` (positives x ``loss_weight``) and ``roc_<set>.png``
    (titles name ``model_name`` when given); writes report.json/.md with ``summary`` as its
    ``run`` section, ``extra`` sections merged in, the study AUC targets when ``targets``,
    and ``preface(report)`` (a markdown string) before the report's markdown;
    ``choose_thresholds`` as in :func:`validate_and_choose_thresholds`.
    Returns the report (NaN as None).
    """
    run_dir = Path(run.path)
    log("evaluating on the validation studies (encode once, windows, stitch)")
    val, val_levels, val_base_levels, thresholds = validate_and_choose_thresholds(run, val_series, config, choose_thresholds)
    report = {
        "run": summary,
        "labels": list(run.labels),
        "model": run.config["model"],
        "sequence": run.config["sequence"],
        "data": run.config["data"],
        "thresholds": {"specificity": config.specificity, **thresholds},
        "baseline_note": "ich_edge.baseline (one score per slice for every label)"
        if val["baseline"] is not None
        else "not available (ich_edge.baseline is not installed)",
        "validation": val,
        **(extra or {}),
    }
    plots = [plot_losses(history, run_dir / "loss.png", loss_weight).name] if history else []
    sets = [("validation", val, val_levels, val_base_levels)]
    if test_series:
        log("evaluating on the test studies")
        base_thresholds = validation_thresholds(val["baseline"]) if val["baseline"] is not None else None
        test, test_levels, test_base_levels = evaluate_set(run, test_series, config, thresholds, base_thresholds)
        report["test"] = test
        sets.append(("test", test, test_levels, test_base_levels))
    plots += _roc_plots(run_dir, sets, model_name)
    if targets:
        target_set = "test" if "test" in report else "validation"
        report["targets"] = {"set": target_set, **targets_met(report[target_set]["model"]["study"]["auc"])}
    report["plots"] = plots
    json_path, md_path = write_report(run_dir, report, preface(nan_to_none(report)) if preface else "")
    log(f"wrote {json_path}, {md_path} and {', '.join(plots)}")
    return nan_to_none(report)
