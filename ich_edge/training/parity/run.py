"""Accuracy parity of TFLite models (``ich-edge parity``): conversion and deployment.

A quantized model that is fast on the phone but quietly lost sensitivity to one subtype is
worse than no model. Parity runs the Keras models and every ``.tflite`` on the same
held-out studies, whole studies through the deployment rule (encode every slice once,
classify windows, stitch; study = max over slices), and asks two questions of each file
(:mod:`ich_edge.training.parity.gates` says which, their gates and the minimum evidence):
conversion parity against the Keras model it was converted from, and deployment parity
against the validated float model of RUN_DIR. Both use the same statistics, per label at
slice and study level:

* ROC AUC of each model, its change versus the reference, and bootstrap 95% intervals of
  both, resampling **studies** (a slice-level replicate takes all slices of the drawn
  studies); the change's interval is *paired*: the reference and the variant are scored on
  the same replicates, so it separates a real drop from the noise of a small test set;
* RSNA weighted log loss (and each label's log loss);
* max and mean absolute probability difference;
* decision agreement at the operating thresholds stored with each model (a run's
  ``thresholds.json`` for the Keras models, each ``.tflite``'s embedded thresholds), the
  positive decisions a variant loses and adds, the truly positive studies it loses
  (``lost_detections``), and sensitivity/specificity of both at their thresholds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ich_edge import LABELS
from ich_edge.errors import ConfigError
from ich_edge.metrics import RSNA_LABEL_WEIGHTS
from ich_edge.precisions import QAT_INT8
from ich_edge.training.parity.compare import Level, compare_level
from ich_edge.training.parity.gates import (
    CONVERSION, DEPLOYMENT, DEPLOYMENT_GATES, EvidenceRule, ParityGates, assess_evidence, check_gates, combine, gates_for,
)
from ich_edge.training.parity.stats import CI_LEVEL
from ich_edge.training.run_dir import IMPORTED, SPLIT_FILE, RunDir, model_sha256


#: Names of the CLI's deployment gate overrides (``--deployment-...``), by :class:`ParityGates` field.
DEPLOYMENT_OVERRIDES = ("max_auc_drop", "max_auc_drop_ci95", "min_agreement", "max_lost_detections")


@dataclass(frozen=True)
class ParityConfig:
    """How ``ich-edge parity`` runs.

    Attributes
    ----------
    replicates : bootstrap replicates (resampling studies); 0 skips the intervals (and so
        leaves the deployment interval gate not evaluable: verdict INSUFFICIENT).
    seed : seed of the bootstrap.
    threads : TFLite interpreter threads.
    platform : where the files run: "host" (this process) or "aarch64" (LiteRT's aarch64 kernels,
        emulated, from ``.ci/provision-arm.sh``: the deployment question on the kernels phones run).
    studies : "validation" (the run's held-out studies; all of a cache that holds none of
        its training studies) or "all" (every study in the cache).
    max_abs_diff, max_auc_drop, min_agreement : conversion gate overrides (None keeps the recipe's).
    deployment : deployment gate overrides by :class:`ParityGates` field name (None keeps
        :data:`DEPLOYMENT_GATES`).
    evidence : the minimum evidence for a verdict.
    """

    replicates: int = 1000
    seed: int = 0
    threads: int = 2
    studies: str = "validation"
    max_abs_diff: float | None = None
    max_auc_drop: float | None = None
    min_agreement: float | None = None
    deployment: dict = field(default_factory=dict)
    evidence: EvidenceRule = EvidenceRule()
    platform: str = "host"

    def __post_init__(self) -> None:
        from ich_edge.runtime.emulation import PLATFORMS

        if self.platform not in PLATFORMS:
            raise ConfigError(f"--platform must be one of {', '.join(PLATFORMS)}, got {self.platform!r}")
        if self.replicates < 0:
            raise ConfigError(f"--bootstrap must be >= 0, got {self.replicates}")
        if self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        if self.studies not in ("validation", "all"):
            raise ConfigError(f"--study-set must be 'validation' or 'all', got {self.studies!r}")
        ParityGates(max_abs_diff=self.max_abs_diff, max_auc_drop=self.max_auc_drop, min_agreement=self.min_agreement)  # validates the values
        unknown = set(self.deployment) - set(DEPLOYMENT_OVERRIDES)
        if unknown:
            raise ConfigError(f"unknown deployment gate(s) {', '.join(sorted(unknown))}; known: {', '.join(DEPLOYMENT_OVERRIDES)}")
        self.deployment_gates  # validates the values

    @property
    def overrides(self) -> dict:
        return {"max_abs_diff": self.max_abs_diff, "max_auc_drop": self.max_auc_drop, "min_agreement": self.min_agreement}

    @property
    def deployment_gates(self) -> ParityGates:
        return DEPLOYMENT_GATES.with_overrides(self.deployment)

    def to_dict(self) -> dict:
        return {**asdict(self), "evidence": {**asdict(self.evidence), "gated_labels": list(self.evidence.gated_labels)}}


def load_reference(run_dir: RunDir | str | Path):
    """The Keras run of a RUN_DIR or a QAT_DIR (:meth:`RunDir.load_keras`; a RunDir, or its path).

    An imported RUN_DIR (``ich-edge import``) is represented by the user's original model file.
    """
    from ich_edge.training.importer.reference import load_original_reference

    run_dir = RunDir.of(run_dir)
    return load_original_reference(run_dir) if run_dir.kind == IMPORTED else run_dir.load_keras()


def select_series(series_list: list, run_dir: RunDir | str | Path, studies: str) -> tuple[list, str]:
    """The held-out series of ``series_list`` for the run ``run_dir`` (its split.json), and a sentence saying which."""
    from ich_edge.training.data import select_studies

    run_dir = RunDir.of(run_dir)
    in_cache = {s.study_uid for s in series_list}
    if studies == "all":
        return series_list, f"all {len(in_cache)} studies of the cache (--study-set all)"
    split = run_dir.split
    if split is None:
        return series_list, f"all {len(in_cache)} studies of the cache (the run has no {SPLIT_FILE})"
    if not in_cache & set(split.train_studies):
        return series_list, f"all {len(in_cache)} studies of the cache (none was used for training)"
    held_out = in_cache & set(split.val_studies)
    if not held_out:
        raise ConfigError(
            f"the cache holds only training studies of {run_dir.path}; pass a cache of held-out studies "
            "or --study-set all (which would compare on training data)"
        )
    return select_studies(series_list, held_out), f"the run's {len(held_out)} validation studies ({SPLIT_FILE})"


def _levels(series_list: list, reference: list, variants: list[list], labels=LABELS) -> tuple[Level, Level]:
    from ich_edge.training.evaluate import gather_levels

    labels = tuple(labels)
    series_list = [s.with_labels(labels) for s in series_list]
    ref = gather_levels(series_list, reference, labels)
    var = [gather_levels(series_list, scores, labels) for scores in variants]
    known = [(s.slice_labels >= 0).all(axis=1) for s in series_list]
    uid_per_row = np.concatenate([[s.study_uid] * int(k.sum()) for s, k in zip(series_list, known)] or [[]])
    present = sorted(set(uid_per_row.tolist()))
    index = {uid: i for i, uid in enumerate(present)}
    slice_groups = np.array([index[u] for u in uid_per_row.tolist()], dtype=np.int64)
    slices = Level("slice", ref["slice_true"], slice_groups, len(present), ref["slice_scores"],
                   [v["slice_scores"] for v in var], labels)
    n_studies = len(ref["study_uids"])
    studies = Level(
        "study", ref["study_true"], np.arange(n_studies), n_studies, ref["study_scores"], [v["study_scores"] for v in var],
        labels,
    )
    return slices, studies


def _check_same_inputs(path, description: dict, run, cache_preprocess) -> None:
    from ich_edge.errors import ModelError
    from ich_edge.sequence import SequenceConfig
    from ich_edge.transforms import PreprocessConfig

    sequence = SequenceConfig.from_dict(description.get("sequence", {}))
    if sequence != run.sequence_config:
        raise ModelError(f"{path} uses windows {sequence} but {run.path} {run.sequence_config}; convert it from this run")
    if "preprocessing" in description:
        preprocess = PreprocessConfig.from_dict(description["preprocessing"])
        if preprocess != cache_preprocess:
            raise ModelError(f"{path} expects preprocessing {preprocess}, the cache has {cache_preprocess}")
    if not description.get("thresholds"):
        raise ModelError(f"{path} carries no operating thresholds; convert it from a run with thresholds.json")


def resolve_references(reference_dir: RunDir | str | Path, converted_from=()) -> tuple[RunDir, list[RunDir], list[str]]:
    """``(validated float RUN_DIR, Keras dirs the files came from, notes)``, each folder a :class:`RunDir`
    (given opened, or as a path: opened here).

    The old spelling ``--reference QAT_DIR`` still works: the QAT_DIR becomes a
    ``--converted-from`` and the float run it was fine-tuned from (its config's
    ``qat.source_run``) the validated reference.
    """
    reference, sources, notes = RunDir.of(reference_dir), [RunDir.of(p) for p in converted_from], []
    if reference.quantized:
        source = (reference.config.get("qat") or {}).get("source_run")
        if not source or not Path(source).is_dir():
            raise ConfigError(
                f"{reference.path} is a QAT_DIR and the float run it came from ({source}) is not here; deployment parity "
                "needs the validated float model: pass --reference RUN_DIR --converted-from QAT_DIR"
            )
        notes.append(f"--reference {reference.path} is a QAT_DIR: compared as --converted-from, deployment against {source}")
        sources.append(reference)
        reference = RunDir.open(source)
    return reference, sources, notes


def _source_index(model, runs: list, notes: list[str]) -> int:
    """Index in ``runs`` of the Keras model ``model`` was converted from (its description's source_run)."""
    source = model.description.get("source_run") or {}
    path, digest = source.get("path"), source.get("model_sha256")
    same_weights = [k for k, run in enumerate(runs) if digest and digest == model_sha256(run.path)]
    if same_weights:  # copies of one model.keras: the folder of the recorded name, else the first given
        return next((k for k in same_weights if Path(runs[k].path).name == path), same_weights[0])
    for k, run in enumerate(runs):  # files converted before the description held a digest: their absolute path
        if not digest and path and Path(path).is_absolute() and Path(path).resolve() == Path(run.path).resolve():
            return k
    quantized = bool(source.get("quantized", model.precision == QAT_INT8))
    candidates = [k for k, run in enumerate(runs) if run.quantized == quantized]
    kind = "QAT" if quantized else "float"
    if len(candidates) != 1:
        given = ", ".join(str(runs[k].path) for k in candidates) or "none"
        recorded = f"folder {path or '(not recorded)'}" + (f", model.keras sha256 {digest[:12]}" if digest else "")
        raise ConfigError(
            f"{model.path.name} was converted from the {kind} model ({recorded}); pass that folder with "
            f"--converted-from (the {kind} folders given: {given}; `sha256sum FOLDER/model.keras` tells them apart)"
        )
    if digest:
        notes.append(f"{model.path.name} was converted from a {kind} model.keras (folder {path}, sha256 {digest[:12]}) "
                     f"that is in none of the folders given (retrained since?); compared with {runs[candidates[0]].path}")
    elif path:
        notes.append(f"{model.path.name} records {path} as its source; compared with {runs[candidates[0]].path}")
    return candidates[0]


def check_same_labels(runs: list, models: list) -> tuple[str, ...]:
    """The labels every Keras run and ``.tflite`` outputs (in one order), or :class:`ModelError` naming the odd one."""
    from ich_edge.errors import ModelError

    labels = runs[0].labels
    for run in runs[1:]:
        if run.labels != labels:
            raise ModelError(f"{run.path} outputs {', '.join(run.labels)} but {runs[0].path} {', '.join(labels)}; "
                             "compare models with the same labels")
    for model in models:
        if tuple(model.labels) != labels:
            raise ModelError(f"{model.path} outputs {', '.join(model.labels)} but {runs[0].path} {', '.join(labels)}; "
                             "convert it from this run")
    return labels


def _question(name, gates, level_results: dict, k: int, reference, evidence: dict) -> dict:
    slice_result, study_result = level_results["slice"]["variants"][k], level_results["study"]["variants"][k]
    judged = check_gates(name, gates, slice_result, study_result, evidence)
    return {"reference": str(reference.path), "quantized_reference": reference.quantized, "gates": gates.to_dict(),
            **judged, "slice": slice_result, "study": study_result}


@dataclass(frozen=True)
class _Inputs:
    """What parity compares: the Keras runs (``runs[0]`` the validated reference), the held-out
    series, and each ``.tflite`` with its scores and the index of the run it was converted from."""

    runs: list
    series: list
    selection: str
    notes: list
    preprocess: object
    #: The Keras runs' scores by run folder, kept by a caller that judges many files on the same studies.
    reference_scores: dict = field(default_factory=dict)
    models: list = field(default_factory=list)
    variants: list = field(default_factory=list)
    source_of: list = field(default_factory=list)


def _load_inputs(reference_dir, converted_from, data, config: ParityConfig, say) -> _Inputs:
    """Check the folders, the cache and the split (before TensorFlow loads anything), then load the Keras runs."""
    from ich_edge.ingest.cache import Cache
    from ich_edge.errors import ModelError

    reference, sources, notes = resolve_references(reference_dir, converted_from)  # each folder opened once
    expected = reference.preprocess_config
    cache = Cache.open(data)
    if cache.preprocess != expected:
        raise ConfigError(f"{data} was prepared with {cache.preprocess}, the reference expects {expected}")
    series_list, selection = select_series(cache.series(), reference, config.studies)
    runs = [load_reference(reference)] + [load_reference(folder) for folder in sources]
    if runs[0].quantized:
        raise ConfigError(f"--reference {reference.path} must be the validated float RUN_DIR of `ich-edge train`")
    for run in runs:
        if not run.thresholds:
            raise ModelError(f"{run.path} has no thresholds.json; parity compares decisions at the validated thresholds")
        if run.preprocess_config != cache.preprocess:
            raise ConfigError(f"{run.path} expects preprocessing {run.preprocess_config}, {data} has {cache.preprocess}")
    say(f"validated reference {runs[0].path}: {len(series_list)} series ({selection})")
    return _Inputs(runs, series_list, selection, notes, cache.preprocess)


def _score_files(inputs: _Inputs, tflite_paths, config: ParityConfig, say) -> None:
    """Run every ``.tflite`` on the series (whole studies), after checking it against its source run."""
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    for path in tflite_paths:
        model = TFLiteStudyModel(path, num_threads=config.threads)
        inputs.source_of.append(_source_index(model, inputs.runs, inputs.notes))
        for run in {0, inputs.source_of[-1]}:
            _check_same_inputs(path, model.description, inputs.runs[run], inputs.preprocess)
        say(f"{Path(path).name} ({model.precision}), converted from {inputs.runs[inputs.source_of[-1]].path}")
        if config.platform == "host":
            inputs.variants.append([model.predict_series(s.images) for s in inputs.series])
        else:
            inputs.variants.append(platform_predictions(path, inputs, config, say))
        inputs.models.append(model)


def platform_predictions(path, inputs: _Inputs, config: ParityConfig, say) -> list:
    """The per-study slice probabilities of ``path`` from the runtime tier's predict path on
    ``config.platform`` (a subprocess: the emulated aarch64 LiteRT of ``.ci/provision-arm.sh``);
    the runtime and its seconds per study go into the report's notes."""
    import tempfile

    from ich_edge.runtime.emulation import predict_files, select_runtime

    runtime = select_runtime(config.platform)
    with tempfile.TemporaryDirectory(prefix="ich_edge_parity_") as work:
        files = []
        for k, s in enumerate(inputs.series):
            files.append(Path(work) / f"{k}.npy")
            np.save(files[-1], np.asarray(s.images))
        say(f"{Path(path).name}: {len(files)} studies on {runtime.name}")
        scores, _, seconds = predict_files(runtime, path, files, threads=config.threads)
    inputs.notes.append(f"platform {config.platform}: {Path(path).name} scored on {runtime.name}, "
                        f"{seconds / max(1, len(files)):.1f} s per study ({len(files)} studies, start-up included)")
    return scores


def _compare_runs(inputs: _Inputs, labels, config: ParityConfig, say) -> tuple[dict, dict]:
    """Per Keras run used: its scores, and both levels compared with the files converted from it
    (all files for the validated reference). Returns ``(results, study_levels)`` by run index."""
    from ich_edge.training.evaluate import predict_series

    results, study_levels = {}, {}
    for r in sorted({0, *inputs.source_of}):
        run = inputs.runs[r]
        say(f"Keras {run.path}")
        key = (str(run.path), inputs.selection, tuple(s.series_uid for s in inputs.series))
        if key not in inputs.reference_scores:
            inputs.reference_scores[key] = [predict_series(run.encoder, run.head, s.images, run.sequence_config)
                                            for s in inputs.series]
        ref_scores = inputs.reference_scores[key]
        members = list(range(len(inputs.models))) if r == 0 else [k for k, s in enumerate(inputs.source_of) if s == r]
        slices, studies = _levels(inputs.series, ref_scores, [inputs.variants[k] for k in members], labels)
        thresholds = [inputs.models[k].description["thresholds"] for k in members]
        results[r] = {"members": members, "slices": slices, **{
            level.name: compare_level(level, run.thresholds[level.name], [t[level.name] for t in thresholds],
                                      config.replicates, config.seed)
            for level in (slices, studies)
        }}
        study_levels[r] = studies
    return results, study_levels


def _model_entries(inputs: _Inputs, results: dict, evidence: dict, config: ParityConfig) -> list[dict]:
    """Each file's two questions (conversion: against its source run; deployment: against the reference)."""
    entries = []
    for k, model in enumerate(inputs.models):
        name = f"{model.path.name} ({model.precision})"
        src = inputs.source_of[k]
        conversion = _question(f"{name} conversion", gates_for(model.precision, config.overrides), results[src],
                               results[src]["members"].index(k), inputs.runs[src], evidence)
        deployment = _question(f"{name} deployment", config.deployment_gates, results[0], k, inputs.runs[0], evidence)
        verdict = combine([conversion["verdict"], deployment["verdict"]])
        entries.append({
            "file": model.path.name,
            "path": str(model.path),
            "precision": model.precision,
            "sha256": model.sha256,
            "converted_from": str(inputs.runs[src].path),
            CONVERSION: conversion,
            DEPLOYMENT: deployment,
            "verdict": verdict,
            "passed": verdict == "PASS",
            "failures": conversion["failures"] + deployment["failures"],
            "not_evaluable": conversion["not_evaluable"] + deployment["not_evaluable"],
            "warnings": [n for n in inputs.notes if n.startswith(model.path.name)],
        })
    return entries


def _report(inputs: _Inputs, data, labels, results: dict, study_levels: dict, evidence: dict, entries: list,
            config: ParityConfig) -> dict:
    """The JSON-ready parity report (format ich-edge-parity/2)."""
    runs, slices = inputs.runs, results[0]["slices"]
    verdict = combine(e["verdict"] for e in entries)
    return {
        "format": "ich-edge-parity/2",
        "reference": {"path": str(runs[0].path), "quantized": False, "thresholds": runs[0].thresholds, "role": "validated",
                      "original_model": (runs[0].config.get("import") or {}).get("path")},
        "converted_from": [
            {"path": str(runs[r].path), "quantized": runs[r].quantized, "thresholds": runs[r].thresholds,
             "metrics": {"slice": results[r]["slice"]["reference"], "study": results[r]["study"]["reference"]}}
            for r in sorted(results) if r != 0
        ],
        "data": {
            "cache": str(data),
            "selection": inputs.selection,
            "series": len(inputs.series),
            "studies": study_levels[0].n_groups,
            "labelled_slices": int(len(slices.y_true)),
        },
        "evidence": evidence,
        "bootstrap": {"replicates": config.replicates, "level": CI_LEVEL, "unit": "study", "paired": True, "seed": config.seed},
        "labels": list(labels),
        "rsna_weights": {label: RSNA_LABEL_WEIGHTS[label] for label in labels},
        "config": config.to_dict(),
        "notes": inputs.notes,
        "reference_metrics": {"slice": results[0]["slice"]["reference"], "study": results[0]["study"]["reference"]},
        "models": entries,
        "verdict": verdict,
        "passed": verdict == "PASS",
    }


def run_parity(reference_dir, tflite_paths, data, config: ParityConfig, progress=None, converted_from=(),
               reference_scores: dict | None = None) -> tuple[dict, dict]:
    """Answer conversion and deployment parity for every ``.tflite`` on the held-out studies of ``data``.

    ``reference_dir`` is the validated float RUN_DIR (deployment reference, and conversion
    reference of files converted from it); ``converted_from`` lists the other Keras folders
    files were converted from (a QAT_DIR). Each folder is a :class:`RunDir` the command opened
    once (a path is opened here). ``reference_scores``: a dict the caller keeps
    between calls on the same studies, so the Keras models score them once. Returns ``(report, curves)``: the JSON-ready
    report (``report["verdict"]``: PASS, FAIL or INSUFFICIENT; each model's two questions
    with their own verdict, failures and not-evaluable gates) and the study-level truth
    and scores for the ROC figure.

    Steps: :func:`_load_inputs` (cheap checks first), :func:`_score_files`,
    :func:`check_same_labels`, :func:`_compare_runs`, the evidence, :func:`_model_entries`,
    :func:`_report`.
    """
    say = progress or (lambda line: None)
    inputs = _load_inputs(reference_dir, converted_from, data, config, say)
    if reference_scores is not None:
        inputs = replace(inputs, reference_scores=reference_scores)
    _score_files(inputs, tflite_paths, config, say)
    labels = check_same_labels(inputs.runs, inputs.models)
    results, study_levels = _compare_runs(inputs, labels, config, say)
    evidence = assess_evidence(config.evidence, study_levels[0].y_true, labels)
    entries = _model_entries(inputs, results, evidence, config)
    report = _report(inputs, data, labels, results, study_levels, evidence, entries, config)
    studies = study_levels[0]
    return report, {"study_true": studies.y_true, "reference": studies.reference, "variants": studies.variants,
                    "labels": list(labels)}
