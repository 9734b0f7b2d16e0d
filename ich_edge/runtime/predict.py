"""Hemorrhage prediction on the CT series under a path with a TFLite model (``ich-edge predict``).

Everything a prediction depends on is read from the model's embedded description
(:mod:`ich_edge.runtime.description`), never from constants in this module: the labels and
their order, the preprocessing (:class:`~ich_edge.transforms.PreprocessConfig`), the
window/stride of the recurrent head and the operating thresholds. Per series:

1. read every slice once, bottom of the head to the top (:func:`ich_edge.dicom.find_series`);
2. preprocess with the shared :class:`~ich_edge.transforms.Preprocess` (HU -> area resize ->
   three windows -> uint8), exactly as the trainer and the app do;
3. ``TFLiteStudyModel.predict_series``: encode each slice once, classify windows of
   consecutive slices, stitch (mean over covering windows); a study shorter than one window
   is padded with blank slices;
4. study probability per label = max over slices; a label is positive when its probability
   is >= the model's study threshold for it, a slice when >= the slice threshold.

A folder that mixes good and bad input still yields the good series: problems (files
skipped, series that could not be read) are collected in :attr:`PathPrediction.problems`
and only when no series at all can be predicted is an error raised.

What the model could not see (:mod:`ich_edge.runtime.completeness`). Each series carries
the problems ``ich-edge inspect`` reports for it (gaps, duplicate positions, mixed studies,
sort fallbacks: :attr:`ich_edge.dicom.Series.problems`, one owner), the slices dropped while
decoding, and its coverage, measured on the slices the model actually saw. Coverage is
*incomplete* when any of these holds:

* fewer slices than one window of the model (``sequence.window_slices``);
* the extent along the slice normal (bottom to top plus one median spacing) is under
  ``MIN_HEAD_EXTENT_MM`` = 100 mm, where a head spans about 140-160 mm: a single slice, the
  skull base alone, a partial scan;
* a step between neighbouring slices larger than ``GAP_FACTOR`` (1.5, the rule inspect
  reports gaps with) times the median spacing: slices are missing;
* slice positions are missing, so coverage cannot be measured.

Before any of this, a series the model must not judge is UNREADABLE, and the model is not
run on it: a series that ``prepare`` would leave out (:data:`ich_edge.ingest.series_filter.JUDGED`:
localizers, non-axial reformats, slices of several patients in one series), and a series
whose pixels cannot be trusted to be HU (:class:`~ich_edge.errors.UnreadableSeriesError` from
:meth:`ich_edge.dicom.Series.load`: a missing or malformed Rescale Intercept/Slope, pixel
data longer than the header declares, HU that no head holds). Its reasons are its problems.

Verdicts: a series with a positive label is POSITIVE, with the coverage warning appended to
its triage line when coverage is incomplete (a bleed that was seen stays seen). A series
with no positive label is NEGATIVE only when coverage is complete, otherwise INCOMPLETE:
"nothing seen" is no answer for the part of the head the model was not shown. Problems
appear in the JSON (``problems``, ``coverage``, ``verdict``) and, via ``ich-edge
predict``, as one stderr line per series; quoted header values in them are masked
(:mod:`ich_edge.dicom.privacy`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ich_edge import sequence
from ich_edge.dicom import Series, find_series
from ich_edge.dicom.privacy import mask_all
from ich_edge.errors import ConfigError, IchEdgeError, ModelError, SeriesError, UnreadableSeriesError
from ich_edge.runtime.completeness import Coverage, series_coverage
from ich_edge.runtime.model_file import FALLBACK_THRESHOLD, ModelFile, ModelSettings, OperatingPoints  # noqa: F401
from ich_edge.ingest.series_filter import JUDGED
from ich_edge.transforms import Preprocess, PreprocessConfig

#: Label that says whether any hemorrhage is present; the other labels are subtypes.
ANY_LABEL = "any"
#: The verdicts of a triage line (UNREADABLE: not judged; see the module docstring).
POSITIVE, NEGATIVE, INCOMPLETE, UNREADABLE = "POSITIVE", "NEGATIVE", "INCOMPLETE", "UNREADABLE"


@dataclass(frozen=True)
class SeriesPrediction:
    """What the model says about one series, and what it saw.

    Attributes
    ----------
    index : 1-based position of the series among those predicted (names PNG files).
    slice_ids : (0008,0018) SOP Instance UIDs, bottom of the head to the top.
    slice_probabilities : float32 ``(num_slices, num_labels)``.
    images : the model input, uint8 ``(num_slices, size, size, 3)``.
    timing_ms : ``read`` (decode to HU), ``preprocess``, ``inference`` in milliseconds.
    problems : the series' problems (gaps, duplicates, mixed studies, slices dropped, sort
        fallbacks, and the coverage reasons), quoted header values masked.
    coverage : what the predicted slices cover (None only for predictions made by hand and
        for UNREADABLE series).
    unreadable : why the series was not judged (verdict UNREADABLE; no probabilities, no
        images); empty for a judged series.
    """

    index: int
    series_uid: str
    study_uid: str | None
    slice_ids: list[str]
    slice_probabilities: np.ndarray
    images: np.ndarray
    timing_ms: dict[str, float]
    problems: list[str] = field(default_factory=list)
    coverage: Coverage | None = None
    unreadable: tuple[str, ...] = ()

    @property
    def num_slices(self) -> int:
        return len(self.slice_ids)

    @property
    def study_probabilities(self) -> np.ndarray:
        """Study-level probability per label (the study rule, :func:`ich_edge.sequence.study_probabilities`)."""
        return sequence.study_probabilities(self.slice_probabilities)


@dataclass(frozen=True)
class PathPrediction:
    """Predictions for every series under a path, with the model that made them."""

    model_path: str
    sha256: str
    precision: str
    points: OperatingPoints
    series: list[SeriesPrediction]
    problems: list[str]
    scan_ms: float


#: ``predict --runtime``: LiteRT's Interpreter (XNNPACK) or its CompiledModel API (CPU accelerator).
RUNTIMES = ("interpreter", "compiled")


def load_model(path: str | Path | ModelFile, num_threads: int = 2, runtime: str = "interpreter"):
    """Open a model as a :class:`~ich_edge.runtime.tflite_model.TFLiteStudyModel`.

    ``path`` is a ``.tflite`` path (read and checked once, by
    :meth:`~ich_edge.runtime.model_file.ModelFile.open`) or a ModelFile already open.
    ``runtime="compiled"`` runs both signatures on LiteRT's CompiledModel
    (:class:`~ich_edge.runtime.compiled.CompiledRuntimeStudyModel`).

    Raises
    ------
    ModelError
        If the file is missing, not a TFLite model, or lacks the ich-edge description
        (labels, preprocessing, sequence) that predict needs.
    """
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    if int(num_threads) < 1:
        raise ConfigError(f"--threads must be >= 1, got {num_threads}")
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    model_file = path if isinstance(path, ModelFile) else ModelFile.open(path)
    try:
        if runtime == "compiled":
            from ich_edge.runtime.compiled import CompiledRuntimeStudyModel

            return CompiledRuntimeStudyModel(model_file, num_threads=int(num_threads), accelerator="cpu")
        return TFLiteStudyModel(model_file, num_threads=int(num_threads))
    except IchEdgeError:
        raise
    except (ValueError, RuntimeError, OSError) as err:
        raise ModelError(
            f"{model_file.source}: cannot be loaded as a TFLite model ({err}); pass a .tflite written by `ich-edge convert`"
        ) from err


def model_settings(description: dict, path: str | Path = "model") -> tuple[PreprocessConfig, OperatingPoints]:
    """The preprocessing and thresholds a description prescribes; ModelError if incomplete.

    A model opened by :func:`load_model` has them parsed already: ``model.settings``.
    """
    settings = ModelSettings.from_description(description, str(path))
    return settings.preprocessing, settings.points


def predict_path(model, path: str | Path) -> PathPrediction:
    """Run ``model`` on every CT series under ``path`` (a file, a series or a mixed folder).

    Raises
    ------
    NoSeriesError, NotCTError, DicomError
        If ``path`` holds no usable CT series (from :func:`ich_edge.dicom.find_series`).
    SeriesError
        If series were found but none could be read.
    """
    settings = _settings(model)
    points = settings.points
    preprocess = Preprocess(settings.preprocessing)
    start = time.perf_counter()
    scan = find_series(path)
    scan_ms = (time.perf_counter() - start) * 1000.0
    problems = mask_all(scan.problems)
    patients = {series.patient_uid for series in scan.series if series.patient_uid}
    if len(patients) > 1:
        problems.append(f"the series found belong to {len(patients)} patients; each verdict is about its own series only")
    predictions: list[SeriesPrediction] = []
    for series in scan.series:
        index = len(predictions) + 1
        try:
            reason = JUDGED.reason_to_skip(series)
            if reason is not None:
                raise UnreadableSeriesError(reasons=(f"{reason} (prepare and predict leave such series out)",))
            predictions.append(_predict_series(model, series, preprocess, index, settings))
        except UnreadableSeriesError as err:
            predictions.append(unreadable_prediction(series, index, err.reasons, len(points.labels)))
        except SeriesError as err:
            problems.extend(mask_all([f"{err}; series skipped"]))
    if not predictions:
        raise SeriesError(f"{path}: no series could be read ({problems[-1]})")
    return PathPrediction(
        model_path=str(model.path),
        sha256=model.sha256,
        precision=model.precision,
        points=points,
        series=predictions,
        problems=problems,
        scan_ms=scan_ms,
    )


def _settings(model) -> ModelSettings:
    """The typed description of a model from :func:`load_model` (parsed once, when it was opened)."""
    settings = getattr(model, "settings", None)
    return settings if isinstance(settings, ModelSettings) else ModelSettings.from_description(model.description, str(model.path))


def _predict_series(model, series: Series, preprocess: Preprocess, index: int, settings: ModelSettings):
    points = settings.points
    start = time.perf_counter()
    loaded = series.load()
    read_done = time.perf_counter()
    images = preprocess.volume(loaded.images)
    preprocess_done = time.perf_counter()
    probabilities = run_model(model, images)
    inference_done = time.perf_counter()
    if probabilities.shape != (len(images), len(points.labels)):
        raise ModelError(
            f"{model.path}: predicted shape {probabilities.shape}, expected ({len(images)}, {len(points.labels)}) "
            "from the labels in its description; re-convert the model"
        )
    coverage = series_coverage(series, list(loaded.slice_ids), settings.sequence.window_slices)
    return SeriesPrediction(
        index=index,
        series_uid=series.series_uid,
        study_uid=series.study_uid,
        slice_ids=list(loaded.slice_ids),
        slice_probabilities=probabilities,
        images=images,
        timing_ms={
            "read": (read_done - start) * 1000.0,
            "preprocess": (preprocess_done - read_done) * 1000.0,
            "inference": (inference_done - preprocess_done) * 1000.0,
        },
        problems=mask_all([*series.problems, *loaded.problems, *(r for r in coverage.reasons if r not in coverage.reported)]),
        coverage=coverage,
    )


def unreadable_prediction(series: Series, index: int, reasons, num_labels: int) -> SeriesPrediction:
    """The UNREADABLE entry of ``series``: no probabilities, its reasons as its problems."""
    reasons = tuple(mask_all(reasons))
    return SeriesPrediction(
        index=index,
        series_uid=series.series_uid,
        study_uid=series.study_uid,
        slice_ids=list(series.slice_ids),
        slice_probabilities=np.zeros((0, num_labels), np.float32),
        images=np.zeros((0,), np.uint8),
        timing_ms={"read": 0.0, "preprocess": 0.0, "inference": 0.0},
        problems=[*reasons, *mask_all(series.problems)],
        unreadable=reasons,
    )


def run_model(model, images: np.ndarray) -> np.ndarray:
    """``model.predict_series(images)`` as float32; the interpreter's failures become ModelError.

    LiteRT prepares kernels and delegates on the first run, so a damaged model that loaded
    can still fail here (RuntimeError/ValueError from the interpreter).
    """
    try:
        return np.asarray(model.predict_series(images), dtype=np.float32)
    except (RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ModelError(
            f"{model.path}: the TFLite interpreter failed on this model ({first}); "
            "it is damaged or not an ich-edge model, convert it again with `ich-edge convert`"
        ) from err


# --- triage --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Triage:
    """The one-line verdict on a series.

    ``top_label`` is the most probable positive subtype (or ``any`` when no subtype reaches
    its threshold); ``slice_runs`` are 1-based inclusive (first, last) slice positions,
    bottom to top, where ``top_label``'s slice probability reaches its slice threshold.
    ``verdict`` is POSITIVE, NEGATIVE, INCOMPLETE (no positive label, but coverage too
    incomplete for a negative; see the module docstring) or UNREADABLE (not judged);
    ``coverage_reasons`` say why (for UNREADABLE: the reasons it was not judged).
    """

    verdict: str
    coverage_reasons: tuple[str, ...]
    positive: bool
    any_probability: float
    positive_subtypes: list[tuple[str, float]]
    top_label: str
    top_probability: float
    slice_runs: list[tuple[int, int]]


def positive_labels(prediction: SeriesPrediction, points: OperatingPoints) -> dict[str, bool]:
    """label -> study probability >= the model's study threshold."""
    study = prediction.study_probabilities
    return {label: bool(study[i] >= points.study_thresholds[label]) for i, label in enumerate(points.labels)}


def triage(prediction: SeriesPrediction, points: OperatingPoints) -> Triage:
    """Verdict, positive subtypes (most probable first) and where the top label is seen."""
    if prediction.unreadable:
        return Triage(UNREADABLE, prediction.unreadable, False, float("nan"), [], ANY_LABEL, float("nan"), [])
    study = prediction.study_probabilities
    positive = positive_labels(prediction, points)
    index = {label: i for i, label in enumerate(points.labels)}
    subtypes = [label for label in points.labels if label != ANY_LABEL]
    found = sorted(
        ((label, float(study[index[label]])) for label in subtypes if positive[label]),
        key=lambda item: -item[1],
    )
    has_any = ANY_LABEL in index
    is_positive = positive[ANY_LABEL] if has_any else bool(found)
    is_positive = is_positive or bool(found)
    if found:
        top_label, top_p = found[0]
    elif has_any:
        top_label, top_p = ANY_LABEL, float(study[index[ANY_LABEL]])
    else:
        best = max(subtypes, key=lambda label: study[index[label]])
        top_label, top_p = best, float(study[index[best]])
    runs: list[tuple[int, int]] = []
    if is_positive:
        column = prediction.slice_probabilities[:, index[top_label]]
        runs = slice_runs(column >= points.slice_thresholds[top_label])
    any_p = float(study[index[ANY_LABEL]]) if has_any else float(study.max())
    reasons = prediction.coverage.reasons if prediction.coverage is not None else ()
    verdict = POSITIVE if is_positive else (INCOMPLETE if reasons else NEGATIVE)
    return Triage(verdict, tuple(reasons), is_positive, any_p, found, top_label, top_p, runs)


def slice_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """1-based inclusive (first, last) runs of consecutive True values in ``mask``."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, flag in enumerate(np.asarray(mask, dtype=bool)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start + 1, i))
            start = None
    if start is not None:
        runs.append((start + 1, len(mask)))
    return runs


def format_runs(runs: list[tuple[int, int]]) -> str:
    """``[(14, 19), (22, 22)]`` -> ``"14-19, 22"``."""
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)


def triage_line(prediction: SeriesPrediction, points: OperatingPoints, with_coverage: bool = True) -> str:
    """E.g. ``POSITIVE  any 0.97 | subdural 0.93, intraparenchymal 0.61  slices 14-19``.

    ``UNREADABLE  not judged | <why>`` for a series the model was not run on;
    ``INCOMPLETE  any 0.03 | highest subtype subdural 0.02 | not a negative: <why>`` when no
    label is positive but coverage is incomplete; a POSITIVE line then ends with
    ``| coverage incomplete: <why>``. ``with_coverage=False`` leaves the why out (for a
    caller that shows the reasons elsewhere).
    """
    verdict = triage(prediction, points)
    if verdict.verdict == UNREADABLE:
        return f"UNREADABLE  not judged | {' | '.join(prediction.unreadable)}"
    why = "; ".join(verdict.coverage_reasons) if with_coverage else ""
    any_name = ANY_LABEL if ANY_LABEL in points.labels else "max"  # a model without "any": its highest label
    if not verdict.positive:
        study = prediction.study_probabilities
        subtypes = [(label, float(study[i])) for i, label in enumerate(points.labels) if label != ANY_LABEL]
        label, p = max(subtypes, key=lambda item: item[1]) if subtypes else (ANY_LABEL, verdict.any_probability)
        line = f"{verdict.verdict}  {any_name} {verdict.any_probability:.2f} | highest subtype {label} {p:.2f}"
        return f"{line} | not a negative: {why}" if why else line
    if verdict.positive_subtypes:
        found = ", ".join(f"{label} {p:.2f}" for label, p in verdict.positive_subtypes)
    else:
        found = "no subtype above its threshold"
    runs = format_runs(verdict.slice_runs)
    if runs:
        where = f"  slices {runs}" + ("" if verdict.positive_subtypes else f" ({verdict.top_label})")
    else:
        where = f"  no single slice reaches the {verdict.top_label} slice threshold"
    line = f"POSITIVE  {any_name} {verdict.any_probability:.2f} | {found}{where}"
    return f"{line} | coverage incomplete: {why}" if why else line
