"""The two parity questions, their gates, and how much evidence a verdict needs.

``ich-edge parity`` answers two questions for every ``.tflite``, on the same held-out studies
and with the same statistics (study AUC changes with paired bootstrap 95% intervals, decision
agreement at the thresholds, lost and added positives, max |dp|):

**Conversion parity**: does the file compute what the Keras model it was converted from
computes? The reference is the float RUN_DIR for fp32/fp16/dynamic/int8 and the QAT_DIR for
qat-int8, each at its own ``thresholds.json`` (the file carries the same thresholds). The
gates are :data:`CONVERSION_GATES`, one row per precision, which each recipe in ``converters``
carries as its ``parity`` (fp32: max |dp| 1e-4; reduced precisions: study AUC drop <= 0.005
and decision agreement >= 99% per label). A failure here is a conversion defect. The table
lives here, not in ``converters``, because ``converters`` builds on the training tier and
never the other way round.

**Deployment parity**: does the file the app ships say what the model that was validated
says? The reference is always the float model of RUN_DIR (its validation and test reports
are the evidence a team signed off on) at its validated thresholds; the shipped file decides
at the thresholds it carries (a QAT model's own, chosen on the validation studies, since QAT
made a new model). The gates are one table for every precision, :data:`DEPLOYMENT_GATES`,
chosen from what a triage user relies on. The tool reorders a worklist: a study it flags is
read sooner. Per gated label, at study level:

* ``max_lost_detections = 1``: at most one *truly positive* test study that the validated
  model flags is not flagged by the shipped model. Each lost detection is a bleed read later
  than the validation promised; this is the harm that matters most, so it is counted in
  studies, not hidden in an average. One is allowed because a model with its own
  thresholds moves the studies that sit at the threshold, and with ~15-60 positive studies
  per label one study is 2-7% of the sensitivity, within the validation's own interval.
* ``min_agreement = 0.95``: at least 95% of the studies get the same decision. This bounds
  the added flags too (false alarms dilute the worklist and spend the specificity that was
  validated), and it is looser than conversion's 99% because a QAT model is a retrained model
  whose scores move, not a re-encoding of the same weights.
* ``max_auc_drop = 0.01``: the study AUC (ranking of the worklist by score) loses at most
  0.01, an order of magnitude below the width of the validation's own intervals.
* ``max_auc_drop_ci95 = 0.03``: and the far end of the *paired* 95% bootstrap interval of the
  change shows no drop larger than 0.03 (a non-inferiority margin): a drop that the test set
  cannot bound is not a pass. It needs the bootstrap (``--bootstrap`` > 0).

max |dp| is reported but not gated: a retrained model's probabilities differ by design.

**Minimum evidence** (:class:`EvidenceRule`): a verdict needs at least ``min_studies = 20``
held-out studies, and a gated label at least ``min_positive_studies = 5`` positive and as many
negative studies (one lost detection among fewer than 5 positives is 20% of the sensitivity;
an AUC over fewer is noise). Below that the label's gates are "not evaluable"; the verdict is
INSUFFICIENT (exit code 4) when any gated label cannot be evaluated and no gate failed.
Verdicts: FAIL (any evaluated gate failed) over INSUFFICIENT over PASS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ich_edge import LABELS, precisions
from ich_edge.errors import ConfigError
from ich_edge.evidence import DEFAULT_MIN_POSITIVE_STUDIES, DEFAULT_MIN_STUDIES, below_defaults, default_minimums

PASS, FAIL, INSUFFICIENT = "PASS", "FAIL", "INSUFFICIENT"
CONVERSION, DEPLOYMENT = "conversion", "deployment"


@dataclass(frozen=True)
class ParityGates:
    """Pass/fail limits of one question for one model; ``None`` disables a gate.

    Attributes
    ----------
    max_abs_diff : largest allowed |p_variant - p_reference| over all slices, studies, labels.
    max_auc_drop : largest allowed study-level AUC drop (reference - variant), every gated label.
    min_agreement : smallest allowed share of studies with the same decision, every gated label.
    max_auc_drop_ci95 : largest drop allowed at the far end of the paired 95% interval of the change.
    max_lost_detections : most truly positive studies the reference flags and the variant misses.
    """

    max_abs_diff: float | None = None
    max_auc_drop: float | None = None
    min_agreement: float | None = None
    max_auc_drop_ci95: float | None = None
    max_lost_detections: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_abs_diff", "max_auc_drop", "max_auc_drop_ci95"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise ConfigError(f"min_agreement must be in [0, 1] (e.g. 0.99), got {self.min_agreement}")
        if self.max_lost_detections is not None and (self.max_lost_detections < 0 or self.max_lost_detections != int(self.max_lost_detections)):
            raise ConfigError(f"max_lost_detections must be a whole number >= 0, got {self.max_lost_detections}")

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, overrides: dict | None) -> "ParityGates":
        """These gates with ``overrides`` applied (``None`` values ignored; only gates that are set)."""
        gates = self
        for name, value in (overrides or {}).items():
            if value is not None and getattr(gates, name) is not None:
                gates = replace(gates, **{name: int(value) if name == "max_lost_detections" else float(value)})
        return gates


#: Deployment parity, every precision (reasoning in the module docstring).
DEPLOYMENT_GATES = ParityGates(max_auc_drop=0.01, max_auc_drop_ci95=0.03, min_agreement=0.95, max_lost_detections=1)


#: Conversion parity gates per precision (against the Keras model the file was converted
#: from); the recipe of each precision in ``converters`` carries its row as ``parity``.
CONVERSION_GATES: dict[str, dict[str, float]] = {
    precisions.FP32: {"max_abs_diff": 1e-4},
    precisions.FP16: {"max_auc_drop": 0.005, "min_agreement": 0.99},
    precisions.DYNAMIC: {"max_auc_drop": 0.005, "min_agreement": 0.99},
    precisions.INT8: {"max_auc_drop": 0.005, "min_agreement": 0.99},
    precisions.QAT_INT8: {"max_auc_drop": 0.005, "min_agreement": 0.99},
    # int8 with the layers that broke parity kept in float: a re-encoding of the same float weights, as int8
    precisions.INT8_MIXED: {"max_auc_drop": 0.005, "min_agreement": 0.99},
}


def gates_for(precision: str, overrides: dict | None = None) -> ParityGates:
    """Conversion gates of ``precision`` (:data:`CONVERSION_GATES`), with CLI ``overrides`` applied.

    ``overrides`` maps a gate name to a value (``None`` values are ignored): an fp32 recipe
    has a ``max_abs_diff`` gate, reduced precisions ``max_auc_drop`` and ``min_agreement``;
    an override only replaces a gate the recipe has.
    """
    if precision not in CONVERSION_GATES:
        raise ConfigError(f"no conversion parity gates for precision {precision!r} (known: {', '.join(CONVERSION_GATES)})")
    return ParityGates(**{k: CONVERSION_GATES[precision].get(k) for k in ParityGates.__dataclass_fields__}).with_overrides(overrides)


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


# --- evidence ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceRule:
    """How much held-out data a verdict needs (see the module docstring).

    Attributes
    ----------
    min_studies : studies needed for any verdict.
    min_positive_studies : positive (and as many negative) studies a gated label needs.
    gated_labels : labels whose gates decide the verdict; the others are reported only.
    """

    min_studies: int = DEFAULT_MIN_STUDIES
    min_positive_studies: int = DEFAULT_MIN_POSITIVE_STUDIES
    gated_labels: tuple[str, ...] = tuple(LABELS)

    def __post_init__(self) -> None:
        if self.min_studies < 1:
            raise ConfigError(f"--min-studies must be >= 1, got {self.min_studies}")
        if self.min_positive_studies < 1:
            raise ConfigError(f"--min-positive-studies must be >= 1, got {self.min_positive_studies}")
        object.__setattr__(self, "gated_labels", tuple(self.gated_labels))
        unknown = [label for label in self.gated_labels if label not in LABELS]
        if unknown or not self.gated_labels:
            raise ConfigError(f"--gated-labels takes labels among {', '.join(LABELS)}; got {', '.join(self.gated_labels) or 'none'}")


def assess_evidence(rule: EvidenceRule, study_true: np.ndarray, labels=LABELS) -> dict:
    """Which labels the held-out studies can judge: counts, per-label evaluability, reasons.

    ``labels`` names the columns of ``study_true`` (the model's labels). Gated labels the
    model does not output are not gated (``gated_labels`` lists the ones that are); a rule
    that gates none of the model's labels is a :class:`ConfigError`.
    """
    labels = tuple(labels)
    gated_labels = tuple(label for label in rule.gated_labels if label in labels)
    if not gated_labels:
        raise ConfigError(
            f"--gated-labels {', '.join(rule.gated_labels)} names none of the model's labels ({', '.join(labels)}); "
            "gate at least one of them"
        )
    y = np.asarray(study_true).astype(np.int64).reshape(-1, len(labels))
    n = int(len(y))
    enough_studies = n >= rule.min_studies
    per_label, reasons = {}, []
    if not enough_studies:
        reasons.append(f"{n} held-out studies < the {rule.min_studies} a verdict needs")
    for i, label in enumerate(labels):
        positives, negatives = int(y[:, i].sum()), int(n - y[:, i].sum())
        short = []
        if positives < rule.min_positive_studies:
            short.append(f"{positives} positive")
        if negatives < rule.min_positive_studies:
            short.append(f"{negatives} negative")
        reason = None
        if not enough_studies:
            reason = f"{n} studies < {rule.min_studies}"
        elif short:
            reason = f"{' and '.join(short)} studies < {rule.min_positive_studies}"
        gated = label in gated_labels
        per_label[label] = {"positives": positives, "negatives": negatives, "gated": gated,
                         "evaluable": reason is None, "reason": reason}
        if gated and reason is not None and enough_studies:
            reasons.append(f"{label}: {reason}")
    recorded = {**asdict(rule), "gated_labels": list(gated_labels)}
    return {
        **recorded,
        # the minimums used travel with the verdict; assets refuses a report below the defaults
        "defaults": default_minimums(labels),
        "below_defaults": below_defaults({**recorded, "gated_labels": list(rule.gated_labels)}, labels),
        "studies": n,
        "enough_studies": enough_studies,
        "labels": per_label,
        "sufficient": enough_studies and all(per_label[label]["evaluable"] for label in gated_labels),
        "reasons": reasons,
    }


# --- checking ------------------------------------------------------------------------------


def _auc_lines(name: str, label: str, entry: dict, gates: ParityGates, failures: list, missing: list) -> None:
    delta = entry["auc_delta"]
    if gates.max_auc_drop is not None:
        if delta is None:
            missing.append(f"{name}: {label} study AUC not defined (one class only)")
        elif -delta > gates.max_auc_drop:
            low, high = entry["auc_delta_ci95"]
            ci = f"; paired 95% CI of the change [{low:+.4f}, {high:+.4f}]" if low is not None else ""
            failures.append(
                f"{name}: {label} study AUC drop {-delta:.4f} > {gates.max_auc_drop:g} "
                f"(reference {entry['auc'] - delta:.4f}, this model {entry['auc']:.4f}{ci})"
            )
    if gates.max_auc_drop_ci95 is not None:
        low = (entry["auc_delta_ci95"] or [None, None])[0]
        if low is None:
            missing.append(f"{name}: {label} paired 95% interval of the AUC change not computed (needs --bootstrap > 0)")
        elif -low > gates.max_auc_drop_ci95:
            failures.append(
                f"{name}: {label} study AUC drop not bounded: the paired 95% CI of the change reaches {low:+.4f}, "
                f"beyond -{gates.max_auc_drop_ci95:g}"
            )


def check_gates(name: str, gates: ParityGates, slice_result: dict, study_result: dict, evidence: dict) -> dict:
    """Judge one model on one question.

    Returns ``{"verdict", "failures", "not_evaluable", "warnings"}``: one line per failed gate
    and label (naming the label and the number), one per gate the data cannot judge.
    """
    failures, missing = [], []
    if not evidence["enough_studies"]:
        missing.append(f"{name}: {evidence['studies']} held-out studies < {evidence['min_studies']}: no gate is evaluable")
        return {"verdict": INSUFFICIENT, "failures": [], "not_evaluable": missing, "warnings": []}
    if gates.max_abs_diff is not None:
        for level, result in (("slice", slice_result), ("study", study_result)):
            for label, entry in result["labels"].items():
                if entry["max_abs_diff"] is not None and entry["max_abs_diff"] > gates.max_abs_diff:
                    failures.append(
                        f"{name}: {label} {level} max |p - p_ref| {entry['max_abs_diff']:.3g} > {gates.max_abs_diff:g}"
                    )
    labelled = (gates.max_auc_drop, gates.max_auc_drop_ci95, gates.min_agreement, gates.max_lost_detections)
    for label in evidence["gated_labels"]:
        entry = study_result["labels"][label]
        if all(g is None for g in labelled):
            break
        if not evidence["labels"][label]["evaluable"]:
            missing.append(f"{name}: {label} not evaluable ({evidence['labels'][label]['reason']})")
            continue
        _auc_lines(name, label, entry, gates, failures, missing)
        if gates.min_agreement is not None and entry["agreement"] < gates.min_agreement:
            failures.append(
                f"{name}: {label} study decision agreement {100 * entry['agreement']:.1f}% < "
                f"{100 * gates.min_agreement:g}% ({entry['lost_positives']} positive decisions lost, "
                f"{entry['new_positives']} added at its threshold {entry['threshold']:.4f})"
            )
        if gates.max_lost_detections is not None and entry["lost_detections"] > gates.max_lost_detections:
            failures.append(
                f"{name}: {label} {entry['lost_detections']} bleeding studies flagged by the reference are missed "
                f"(> {gates.max_lost_detections}); sensitivity at the thresholds {entry['reference_sensitivity']:.3f} -> "
                f"{entry['sensitivity']:.3f}"
            )
    verdict = FAIL if failures else INSUFFICIENT if missing else PASS
    return {"verdict": verdict, "failures": failures, "not_evaluable": missing, "warnings": []}


def combine(verdicts) -> str:
    """FAIL over INSUFFICIENT over PASS (PASS for no verdicts)."""
    verdicts = list(verdicts)
    return FAIL if FAIL in verdicts else INSUFFICIENT if INSUFFICIENT in verdicts else PASS
