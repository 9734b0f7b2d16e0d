"""Accuracy parity of TFLite models against the Keras model they came from (``ich-edge parity``).

A quantized model that is fast on the phone but quietly lost sensitivity to one subtype is
worse than no model. Parity runs the Keras reference and every ``.tflite`` on the same
held-out studies, whole studies through the deployment rule (encode every slice once,
classify windows, stitch; study = max over slices), and compares them per label at slice
and study level:

* ROC AUC of each model, its change versus the reference, and bootstrap 95% intervals of
  both, resampling **studies** (a slice-level replicate takes all slices of the drawn
  studies); the change's interval is *paired*: the reference and the variant are scored on
  the same replicates, so it separates a real drop from the noise of a small test set;
* RSNA weighted log loss (and each label's log loss);
* max and mean absolute probability difference;
* decision agreement at the operating thresholds stored with each model (the run's
  ``thresholds.json`` for the reference, each ``.tflite``'s embedded thresholds), with the
  positives a variant loses and the ones it adds.

Pass/fail gates come from the precision recipes in ``converters`` (one table), overridable:
fp32 must match within a max absolute difference; reduced precisions must keep every
label's study-level AUC within a drop and agree on study decisions at a minimum rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ich_edge import LABELS
from ich_edge.errors import ConfigError
from ich_edge.metrics import RSNA_WEIGHTS, roc_auc, rsna_log_loss
from ich_edge.training.parity_stats import CI_LEVEL, bootstrap_level


@dataclass(frozen=True)
class ParityGates:
    """Pass/fail limits for one variant; ``None`` disables a gate.

    Attributes
    ----------
    max_abs_diff : largest allowed |p_variant - p_reference| over all slices, studies, labels.
    max_auc_drop : largest allowed study-level AUC drop (reference - variant), every label.
    min_agreement : smallest allowed share of studies with the same decision, every label.
    """

    max_abs_diff: float | None = None
    max_auc_drop: float | None = None
    min_agreement: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_abs_diff", "max_auc_drop"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise ConfigError(f"min_agreement must be in [0, 1] (e.g. 0.99), got {self.min_agreement}")

    def to_dict(self) -> dict:
        return asdict(self)


def gates_for(precision: str, overrides: dict | None = None) -> ParityGates:
    """The gates of ``precision`` from its converter recipe, with CLI ``overrides`` applied.

    ``overrides`` maps a gate name to a value (``None`` values are ignored): an fp32 recipe
    has a ``max_abs_diff`` gate, reduced precisions ``max_auc_drop`` and ``min_agreement``;
    an override only replaces a gate the recipe has.
    """
    from converters import get_recipe

    gates = recipe_gates(get_recipe(precision))
    for name, value in (overrides or {}).items():
        if value is not None and getattr(gates, name) is not None:
            gates = replace(gates, **{name: float(value)})
    return gates


def recipe_gates(recipe) -> ParityGates:
    """:class:`ParityGates` from a recipe's ``parity`` field (a dict or an object with the fields)."""
    parity = getattr(recipe, "parity", None)
    if parity is None:
        raise ConfigError(f"recipe {getattr(recipe, 'name', recipe)!r} has no parity gates")
    if isinstance(parity, ParityGates):
        return parity
    if not isinstance(parity, dict):
        parity = {k: getattr(parity, k, None) for k in ParityGates.__dataclass_fields__}
    return ParityGates(**{k: parity.get(k) for k in ParityGates.__dataclass_fields__})


# --- comparison -----------------------------------------------------------------------------


def _none(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def _label_log_loss(y: np.ndarray, p: np.ndarray, eps: float = 1e-7) -> float:
    p = np.clip(np.asarray(p, np.float64), eps, 1.0 - eps)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()) if len(y) else float("nan")


@dataclass(frozen=True)
class Level:
    """Truth, per-model scores and study groups of one level (``slice`` or ``study``)."""

    name: str
    y_true: np.ndarray
    groups: np.ndarray
    n_groups: int
    reference: np.ndarray
    variants: list = field(default_factory=list)


def compare_level(level: Level, ref_thresholds: dict, var_thresholds: list[dict], replicates: int, seed: int) -> dict:
    """Per-label comparison of each variant with the reference at one level (see module doc)."""
    y = level.y_true.astype(np.int64)
    boot = bootstrap_level(y, level.reference, level.variants, level.groups, level.n_groups, replicates, seed)
    ref_auc = {label: roc_auc(y[:, i], level.reference[:, i]) for i, label in enumerate(LABELS)}
    reference = {
        "n": int(len(y)),
        "positives": {label: int(y[:, i].sum()) for i, label in enumerate(LABELS)},
        "rsna_log_loss": _none(rsna_log_loss(y, level.reference)) if len(y) else None,
        "labels": {
            label: {
                "auc": _none(ref_auc[label]),
                "auc_ci95": boot["reference"][label],
                "log_loss": _none(_label_log_loss(y[:, i], level.reference[:, i])),
                "threshold": float(ref_thresholds[label]),
            }
            for i, label in enumerate(LABELS)
        },
    }
    variants = []
    for k, (scores, thresholds) in enumerate(zip(level.variants, var_thresholds)):
        labels = {}
        for i, label in enumerate(LABELS):
            diff = np.abs(scores[:, i].astype(np.float64) - level.reference[:, i])
            ref_call = level.reference[:, i] >= ref_thresholds[label]
            var_call = scores[:, i] >= thresholds[label]
            auc = roc_auc(y[:, i], scores[:, i])
            labels[label] = {
                "auc": _none(auc),
                "auc_ci95": boot["variants"][k][label]["auc"],
                "auc_delta": _none(auc - ref_auc[label]),
                "auc_delta_ci95": boot["variants"][k][label]["delta"],
                "log_loss": _none(_label_log_loss(y[:, i], scores[:, i])),
                "max_abs_diff": float(diff.max()) if diff.size else None,
                "mean_abs_diff": float(diff.mean()) if diff.size else None,
                "threshold": float(thresholds[label]),
                "agreement": float((ref_call == var_call).mean()) if diff.size else None,
                "lost_positives": int((ref_call & ~var_call).sum()),
                "new_positives": int((~ref_call & var_call).sum()),
            }
        variants.append({"rsna_log_loss": _none(rsna_log_loss(y, scores)) if len(y) else None, "labels": labels})
    return {"reference": reference, "variants": variants}


def check_gates(name: str, gates: ParityGates, slice_result: dict, study_result: dict) -> tuple[list[str], list[str]]:
    """``(failures, warnings)``: one line per failed gate and label, naming the label."""
    failures, warnings = [], []
    if gates.max_abs_diff is not None:
        for level, result in (("slice", slice_result), ("study", study_result)):
            for label, entry in result["labels"].items():
                if entry["max_abs_diff"] is not None and entry["max_abs_diff"] > gates.max_abs_diff:
                    failures.append(
                        f"{name}: {label} {level} max |p - p_ref| {entry['max_abs_diff']:.3g} > {gates.max_abs_diff:g}"
                    )
    for label, entry in study_result["labels"].items():
        if gates.max_auc_drop is not None:
            if entry["auc_delta"] is None:
                warnings.append(f"{name}: {label} study AUC gate not evaluable (the studies lack positives or negatives)")
            elif -entry["auc_delta"] > gates.max_auc_drop:
                low, high = entry["auc_delta_ci95"]
                ci = f"; paired 95% CI of the change [{low:+.4f}, {high:+.4f}]" if low is not None else ""
                failures.append(
                    f"{name}: {label} study AUC drop {-entry['auc_delta']:.4f} > {gates.max_auc_drop:g} "
                    f"(reference {entry['auc'] - entry['auc_delta']:.4f}, this model {entry['auc']:.4f}{ci})"
                )
        if gates.min_agreement is not None and entry["agreement"] is not None and entry["agreement"] < gates.min_agreement:
            failures.append(
                f"{name}: {label} study decision agreement {100 * entry['agreement']:.1f}% < "
                f"{100 * gates.min_agreement:g}% ({entry['lost_positives']} positive studies lost, "
                f"{entry['new_positives']} added at its threshold {entry['threshold']:.4f})"
            )
    return failures, warnings


def rsna_weights() -> dict:
    """The RSNA label weights used by the weighted log loss, for the report."""
    return {label: float(w) for label, w in zip(LABELS, RSNA_WEIGHTS)}


# --- running it -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ParityConfig:
    """How ``ich-edge parity`` runs.

    Attributes
    ----------
    replicates : bootstrap replicates (resampling studies); 0 skips the intervals.
    seed : seed of the bootstrap.
    threads : TFLite interpreter threads.
    studies : "validation" (the run's held-out studies; all of a cache that holds none of
        its training studies) or "all" (every study in the cache).
    max_abs_diff, max_auc_drop, min_agreement : gate overrides (None keeps the recipe's).
    """

    replicates: int = 1000
    seed: int = 0
    threads: int = 2
    studies: str = "validation"
    max_abs_diff: float | None = None
    max_auc_drop: float | None = None
    min_agreement: float | None = None

    def __post_init__(self) -> None:
        if self.replicates < 0:
            raise ConfigError(f"--bootstrap must be >= 0, got {self.replicates}")
        if self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        if self.studies not in ("validation", "all"):
            raise ConfigError(f"--studies must be 'validation' or 'all', got {self.studies!r}")
        ParityGates(self.max_abs_diff, self.max_auc_drop, self.min_agreement)  # validates the values

    @property
    def overrides(self) -> dict:
        return {"max_abs_diff": self.max_abs_diff, "max_auc_drop": self.max_auc_drop, "min_agreement": self.min_agreement}


def load_reference(run_dir):
    """Load a RUN_DIR, or a QAT_DIR (``"quantized": true``), with the QAT helper's loader.

    An imported RUN_DIR (``ich-edge import``) is represented by the user's original model file.
    """
    from pathlib import Path

    from ich_edge.training.importer.reference import is_imported_run, load_original_reference
    from ich_edge.training.qat import load_any_run
    from ich_edge.training.run import CONFIG_FILE, read_json

    if is_imported_run(read_json(Path(run_dir) / CONFIG_FILE, "not a run folder")):
        return load_original_reference(run_dir)
    return load_any_run(run_dir)


def select_series(series_list: list, run_dir, studies: str) -> tuple[list, str]:
    """The held-out series of ``series_list`` for the run in ``run_dir``, and a sentence saying which."""
    from pathlib import Path

    from ich_edge.training.data import Split, select_studies
    from ich_edge.training.run import SPLIT_FILE, read_json

    in_cache = {s.study_uid for s in series_list}
    if studies == "all":
        return series_list, f"all {len(in_cache)} studies of the cache (--studies all)"
    split_path = Path(run_dir) / SPLIT_FILE
    if not split_path.is_file():
        return series_list, f"all {len(in_cache)} studies of the cache (the run has no {SPLIT_FILE})"
    split = Split.from_dict(read_json(split_path, "the train/validation split"))
    if not in_cache & set(split.train_studies):
        return series_list, f"all {len(in_cache)} studies of the cache (none was used for training)"
    held_out = in_cache & set(split.val_studies)
    if not held_out:
        raise ConfigError(
            f"the cache holds only training studies of {run_dir}; pass a cache of held-out studies "
            "or --studies all (which would compare on training data)"
        )
    return select_studies(series_list, held_out), f"the run's {len(held_out)} validation studies ({SPLIT_FILE})"


def _levels(series_list: list, reference: list, variants: list[list]) -> tuple[Level, Level]:
    from ich_edge.training.evaluate import gather_levels

    ref = gather_levels(series_list, reference)
    var = [gather_levels(series_list, scores) for scores in variants]
    known = [(s.slice_labels >= 0).all(axis=1) for s in series_list]
    uid_per_row = np.concatenate([[s.study_uid] * int(k.sum()) for s, k in zip(series_list, known)] or [[]])
    present = sorted(set(uid_per_row.tolist()))
    index = {uid: i for i, uid in enumerate(present)}
    slice_groups = np.array([index[u] for u in uid_per_row.tolist()], dtype=np.int64)
    slices = Level("slice", ref["slice_true"], slice_groups, len(present), ref["slice_scores"], [v["slice_scores"] for v in var])
    n_studies = len(ref["study_uids"])
    studies = Level(
        "study", ref["study_true"], np.arange(n_studies), n_studies, ref["study_scores"], [v["study_scores"] for v in var]
    )
    return slices, studies


def _check_same_inputs(path, description: dict, run, cache_preprocess) -> None:
    from ich_edge.errors import ModelError
    from ich_edge.sequence import SequenceConfig
    from ich_edge.transforms import PreprocessConfig

    sequence = SequenceConfig.from_dict(description.get("sequence", {}))
    if sequence != run.sequence_config:
        raise ModelError(f"{path} uses windows {sequence} but the reference {run.sequence_config}; convert it from this run")
    if "preprocessing" in description:
        preprocess = PreprocessConfig.from_dict(description["preprocessing"])
        if preprocess != cache_preprocess:
            raise ModelError(f"{path} expects preprocessing {preprocess}, the cache has {cache_preprocess}")
    if not description.get("thresholds"):
        raise ModelError(f"{path} carries no operating thresholds; convert it from a run with thresholds.json")


def run_parity(reference_dir, tflite_paths, data, config: ParityConfig, progress=None) -> tuple[dict, dict]:
    """Compare every ``.tflite`` with the reference run on the held-out studies of ``data``.

    Returns ``(report, curves)``: the JSON-ready report (``report["passed"]`` is False when
    any model fails a gate; each model's ``failures`` name the label and the number that
    failed) and the study-level truth and scores for the ROC figure.
    """
    from pathlib import Path

    from ich_edge.cache import Cache
    from ich_edge.errors import ModelError
    from ich_edge.runtime.tflite_model import TFLiteStudyModel
    from ich_edge.training.evaluate import predict_series

    from ich_edge.training.run import CONFIG_FILE, read_json
    from ich_edge.transforms import PreprocessConfig

    say = progress or (lambda line: None)
    # Cheap checks first: the data and the split, before TensorFlow loads the model.
    run_config = read_json(Path(reference_dir) / CONFIG_FILE, "not a run folder written by `ich-edge train` or `ich-edge qat`")
    expected = PreprocessConfig.from_dict(run_config.get("preprocess", {}))
    cache = Cache.open(data)
    if cache.preprocess != expected:
        raise ConfigError(f"{data} was prepared with {cache.preprocess}, the reference expects {expected}")
    series_list, selection = select_series(cache.load_all(), reference_dir, config.studies)
    run = load_reference(reference_dir)
    if not run.thresholds:
        raise ModelError(f"{run.path} has no thresholds.json; parity compares decisions at the validated thresholds")
    say(f"reference {run.path}: {len(series_list)} series ({selection})")
    reference = [predict_series(run.encoder, run.head, s.images, run.sequence_config) for s in series_list]
    models, variants = [], []
    for path in tflite_paths:
        model = TFLiteStudyModel(path, num_threads=config.threads)
        _check_same_inputs(path, model.description, run, cache.preprocess)
        say(f"{Path(path).name} ({model.precision})")
        variants.append([model.predict_series(s.images) for s in series_list])
        models.append(model)
    slices, studies = _levels(series_list, reference, variants)
    thresholds = [m.description["thresholds"] for m in models]
    by_level = {
        level.name: compare_level(
            level, run.thresholds[level.name], [t[level.name] for t in thresholds], config.replicates, config.seed
        )
        for level in (slices, studies)
    }
    entries = []
    for k, model in enumerate(models):
        name = f"{model.path.name} ({model.precision})"
        gates = gates_for(model.precision, config.overrides)
        failures, warnings = check_gates(name, gates, by_level["slice"]["variants"][k], by_level["study"]["variants"][k])
        entries.append({
            "file": model.path.name,
            "path": str(model.path),
            "precision": model.precision,
            "sha256": model.sha256,
            "gates": gates.to_dict(),
            "passed": not failures,
            "failures": failures,
            "warnings": warnings,
            "slice": by_level["slice"]["variants"][k],
            "study": by_level["study"]["variants"][k],
        })
    report = {
        "format": "ich-edge-parity/1",
        "reference": {"path": str(run.path), "quantized": run.quantized, "thresholds": run.thresholds,
                      "original_model": (run.config.get("import") or {}).get("path") if not run.quantized else None},
        "data": {
            "cache": str(data),
            "selection": selection,
            "series": len(series_list),
            "studies": studies.n_groups,
            "labelled_slices": int(len(slices.y_true)),
        },
        "bootstrap": {"replicates": config.replicates, "level": CI_LEVEL, "unit": "study", "paired": True, "seed": config.seed},
        "rsna_weights": rsna_weights(),
        "config": asdict(config),
        "reference_metrics": {"slice": by_level["slice"]["reference"], "study": by_level["study"]["reference"]},
        "models": entries,
        "passed": all(e["passed"] for e in entries),
    }
    return report, {"study_true": studies.y_true, "reference": studies.reference, "variants": studies.variants}
