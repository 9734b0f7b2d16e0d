"""Decode DICOM series once into the prepared cache (``ich-edge prepare``).

Each CT series found under a folder (one series folder or the flat RSNA layout) is read
once, turned into the model input by :class:`~ich_edge.transforms.Preprocess` (windowed
uint8 at ``input_size_px``) and stored with its labels and slice ids as one file of the
cache (see :mod:`ich_edge.ingest.cache`). The work is spread over processes: the parent reads
headers only and hands each worker one series (its list of files and header facts, never
pixel arrays); the worker decodes, preprocesses and writes the cache file itself.

Header scan
    The headers are read once and kept in ``CACHE/manifest.json.gz``
    (:mod:`ich_edge.ingest.scan_manifest`); other shards, and later runs over the same files, read
    the manifest instead of every header again.

Which series
    CT series only; :class:`SeriesFilter` then leaves out localizers ((0008,0008) Image Type
    LOCALIZER), series of fewer than ``min_slices`` slices and non-axial series (slice normal
    more than ``max_tilt_deg`` from the head's long axis), each with its reason in the
    problems file.

Patients
    (0010,0020) Patient ID is stored only as a keyed pseudonym ``patient_uid`` (HMAC-SHA256
    with the cache's random key ``CACHE/patient.key``, see :mod:`ich_edge.dicom.privacy`),
    for the patient-level split; without it the study uid stands for the patient (a problem
    says so).

Resuming and sharding
    A series already in the cache is skipped, and :meth:`Cache.write` is atomic, so a killed
    run is resumed by running the same command again. ``shard=(i, n)`` keeps only the series
    with ``int(sha1(series_uid), 16) % n == i``: ``n`` independent jobs (other machines
    included) can prepare one large data set into the same cache folder.

Labels
    * RSNA ``ID,Label`` CSV: slice labels; the study labels are the OR over every labelled
      slice of the series (also the slices whose pixels could not be decoded). A series with
      a slice missing from the CSV is skipped and reported.
    * study-level CSV (``study_uid`` + six columns): study labels only, slice labels -1
      (evaluation caches). A study missing from the CSV is skipped and reported.
    * no CSV: every label -1 (prediction and benchmark caches).

Runtime tier: numpy, pydicom and the standard library only.
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
import shutil
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from ich_edge import LABELS
from ich_edge.ingest.cache import PREPROCESS_FILE, PROBLEMS_DIR, Cache, CachedSeries
from ich_edge.dicom import Series, group_series
from ich_edge.dicom.privacy import KEY_FILE
from ich_edge.errors import CacheError, ConfigError, IchEdgeError, LabelsError, NoSeriesError
from ich_edge.fileio import mark_output, output_exists, output_owner, refuse_existing, refuse_foreign_folder, write_json_atomic
from ich_edge.labels import is_rsna_csv, read_rsna_csv, read_study_csv, study_labels
from ich_edge.ingest.scan_manifest import scan_with_manifest
from ich_edge.ingest.series_filter import SeriesFilter
from ich_edge.transforms import Preprocess, PreprocessConfig

#: ``progress(done, total)``: called in the parent after each series of this run.
ProgressCallback = Callable[[int, int], None]

UNKNOWN = -1


def default_workers() -> int:
    """Worker processes used when none are asked for: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0-based ``i``) to ``(i, n)``; :class:`ConfigError` explains a bad value."""
    index, sep, count = str(text).partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError as err:
        raise ConfigError(f"--shard must look like i/n with 0 <= i < n (e.g. 0/4), got {text!r}") from err
    if not sep:
        raise ConfigError(f"--shard must look like i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return _check_shard(shard, name="--shard")


def _check_shard(shard: tuple[int, int], name: str = "shard") -> tuple[int, int]:
    try:
        index, count = (int(v) for v in shard)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name} must be (i, n) with 0 <= i < n, got {shard!r}") from err
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"{name} must be i/n with n >= 1 and 0 <= i < n (0-based), got {index}/{count}")
    return index, count


def shard_of(series_uid: str, num_shards: int) -> int:
    """The shard a series belongs to: ``int(sha1(series_uid), 16) % num_shards`` (stable everywhere)."""
    return int(hashlib.sha1(series_uid.encode("utf-8")).hexdigest(), 16) % num_shards


def problems_file(cache_dir: str | Path, shard: tuple[int, int]) -> Path:
    """Where a shard's problem report goes: ``CACHE/problems/<i>-of-<n>.json``."""
    index, count = shard
    return Path(cache_dir) / PROBLEMS_DIR / f"{index}-of-{count}.json"


@dataclass(frozen=True)
class Problem:
    """Something prepare skipped or repaired: the series uid or file, and why."""

    item: str
    reason: str

    def to_dict(self) -> dict:
        return {"item": self.item, "reason": self.reason}


@dataclass(frozen=True)
class PrepareSummary:
    """What one ``prepare`` run did (this shard only).

    Attributes
    ----------
    prepared_series, prepared_slices : written to the cache by this run.
    cached_series : of this shard, already in the cache (not redone).
    skipped_series : of this shard, not prepared (labels missing, no decodable slice).
    skipped_inputs : files and non-CT series the header scan left out (every shard sees them).
    other_shard_series : CT series that belong to other shards.
    headers_read : DICOM headers this run read (0 when the scan manifest was reused).
    problems : everything skipped, dropped or repaired, also written to ``problems_path``.
    """

    cache_dir: Path
    shard: tuple[int, int]
    prepared_series: int
    prepared_slices: int
    cached_series: int
    skipped_series: int
    skipped_inputs: int
    other_shard_series: int
    problems: tuple[Problem, ...]
    problems_path: Path
    elapsed_s: float
    headers_read: int = 0

    @property
    def skipped(self) -> int:
        """Series of this shard not prepared plus files/series the scan left out."""
        return self.skipped_series + self.skipped_inputs

    def line(self) -> str:
        """The one-line summary printed by the CLI."""
        text = (
            f"prepared {self.prepared_series} series ({self.prepared_slices} slices), "
            f"skipped {self.skipped}, already cached {self.cached_series}"
        )
        if self.shard[1] > 1:
            text += f" [shard {self.shard[0]}/{self.shard[1]}; {self.other_shard_series} series in other shards]"
        if self.problems:
            text += f"; {len(self.problems)} problem(s) listed in {self.problems_path}"
        return text

    def to_dict(self) -> dict:
        return {
            "shard": list(self.shard),
            "prepared_series": self.prepared_series,
            "prepared_slices": self.prepared_slices,
            "cached_series": self.cached_series,
            "skipped_series": self.skipped_series,
            "skipped_inputs": self.skipped_inputs,
            "other_shard_series": self.other_shard_series,
            "headers_read": self.headers_read,
            "elapsed_s": round(self.elapsed_s, 3),
            "problems": [p.to_dict() for p in self.problems],
        }


# ---------------------------------------------------------------------------------------
# labels


class _MissingLabels(Exception):
    """A series cannot be labelled from the CSV (reported, the series skipped)."""


class _Labels:
    """Label lookup for one run: RSNA slice labels, study labels, or none."""

    def __init__(self, labels_csv: str | Path | None) -> None:
        self.path = None if labels_csv is None else Path(labels_csv)
        self.slice_table: dict[str, np.ndarray] | None = None
        self.study_table: dict[str, np.ndarray] | None = None
        if self.path is None:
            return
        if not self.path.is_file():
            raise LabelsError(f"{self.path}: labels CSV not found; pass an RSNA ID,Label CSV or a study-level CSV, or leave --labels-csv out")
        if is_rsna_csv(self.path):
            self.slice_table = read_rsna_csv(self.path)
        else:
            self.study_table = read_study_csv(self.path)

    def for_series(self, series: Series) -> tuple[np.ndarray, np.ndarray]:
        """``(slice_labels (N, 6), study_labels (6,))`` int8 in the series' slice order."""
        num_slices = len(series.slice_ids)
        unknown_slices = np.full((num_slices, len(LABELS)), UNKNOWN, np.int8)
        if self.slice_table is not None:
            missing = [sid for sid in series.slice_ids if sid not in self.slice_table]
            if missing:
                raise _MissingLabels(
                    f"{len(missing)} of {num_slices} slices lack labels in {self.path.name} "
                    f"(e.g. {missing[0]}); add them to the CSV or prepare without --labels-csv"
                )
            rows = np.stack([self.slice_table[sid] for sid in series.slice_ids]).astype(np.int8)
            return rows, study_labels(rows).astype(np.int8)
        if self.study_table is not None:
            if series.study_uid not in self.study_table:
                study = series.study_uid or "(no Study Instance UID)"
                raise _MissingLabels(f"study {study} is not in {self.path.name}; add a row for it or prepare without --labels-csv")
            return unknown_slices, self.study_table[series.study_uid].astype(np.int8)
        return unknown_slices, np.full(len(LABELS), UNKNOWN, np.int8)


# ---------------------------------------------------------------------------------------
# one series (runs in a worker process)


@dataclass(frozen=True)
class _Task:
    series: Series
    slice_labels: np.ndarray
    study_labels: np.ndarray
    cache_dir: Path
    preprocess: PreprocessConfig


@dataclass(frozen=True)
class _Outcome:
    series_uid: str
    num_slices: int
    problems: tuple[str, ...]
    error: str | None = None


class CacheWriteError(CacheError):
    """The cache cannot be written (a full disk, a read-only folder): the run stops, no series is blamed."""


@lru_cache(maxsize=4)
def _preprocess_for(config: PreprocessConfig) -> Preprocess:
    return Preprocess(config)


def prepare_series(
    series: Series,
    cache: Cache,
    slice_labels: np.ndarray,
    study_labels_row: np.ndarray,
) -> tuple[Path, int, list[str]]:
    """Decode one series, preprocess it with the cache's config and store it.

    Parameters
    ----------
    series : Series
        Header facts of one series (its files, sorted bottom to top).
    cache : Cache
        Destination; its ``preprocess`` config turns HU into the model input.
    slice_labels : ndarray int8 (N, 6)
        One row per slice of ``series.slice_ids`` (-1 where unknown).
    study_labels_row : ndarray int8 (6,)

    Returns
    -------
    (path, num_slices, problems)
        The cache file, the slices stored and what the reader dropped or repaired.

    Raises
    ------
    SeriesError
        When no slice of the series can be decoded.
    """
    loaded = series.load(transform=_preprocess_for(cache.preprocess))
    row_of = {sid: i for i, sid in enumerate(series.slice_ids)}
    rows = [row_of[sid] for sid in loaded.slice_ids]
    item = CachedSeries(
        series_uid=series.series_uid,
        study_uid=series.study_uid or series.series_uid,
        patient_uid=series.patient_uid or series.study_uid or series.series_uid,
        images=np.ascontiguousarray(loaded.images, dtype=np.uint8),
        slice_labels=np.asarray(slice_labels, np.int8)[rows],
        study_labels=np.asarray(study_labels_row, np.int8),
        slice_ids=tuple(loaded.slice_ids),
    )
    try:
        path = cache.write(item)
    except OSError as err:  # the output, not this series: stop the run (a problem would blame the input)
        raise CacheWriteError(f"cannot write the cache {cache.root} ({err.strerror or err}); free some space or "
                              "choose a writable --out, then run the same command again to resume") from err
    return path, item.num_slices, list(loaded.problems)


def _run_task(task: _Task) -> _Outcome:
    uid = task.series.series_uid
    try:
        cache = Cache(task.cache_dir, task.preprocess)
        _, num_slices, problems = prepare_series(task.series, cache, task.slice_labels, task.study_labels)
    except CacheWriteError:
        raise
    except IchEdgeError as err:
        return _Outcome(uid, 0, (), error=str(err))
    except Exception as err:  # noqa: BLE001 - one odd series must not stop a 20k-series run
        return _Outcome(uid, 0, (), error=f"unexpected {type(err).__name__}: {err} (please report this file)")
    return _Outcome(uid, num_slices, tuple(problems))


# ---------------------------------------------------------------------------------------
# the whole run


def _split_problem(text: str) -> Problem:
    """A reader problem string ``"<file or series>: <reason>"`` as a :class:`Problem`."""
    item, sep, reason = str(text).partition(": ")
    item = item.strip().removeprefix("series ")
    return Problem(item, reason.strip()) if sep and item else Problem("scan", str(text))


def cache_entries() -> tuple[str, ...]:
    """The top-level names prepare writes in a cache folder (all that ``--force`` may delete)."""
    from ich_edge.ingest.cache import FORMAT_FILE, SERIES_DIR
    from ich_edge.ingest.scan_manifest import LOCK_FILE, MANIFEST_FILE

    return (PREPROCESS_FILE, FORMAT_FILE, SERIES_DIR, PROBLEMS_DIR, MANIFEST_FILE, LOCK_FILE, KEY_FILE)


def claim_cache_folder(out: str | Path) -> None:
    """Refuse a non-empty ``out`` that is not a cache (the user's files); mark ``out`` as prepare's.

    A folder is a cache when prepare's marker names it so, or (caches from before markers)
    when it has ``preprocess.json`` or holds only names a cache holds.
    """
    out = Path(out)
    if output_exists(out) and output_owner(out) != "prepare" and not (out / PREPROCESS_FILE).is_file():
        refuse_foreign_folder(out, "prepare", "prepare --out", written=cache_entries())
    out.mkdir(parents=True, exist_ok=True)
    mark_output(out, "prepare")


def scan(dicom_dir: str | Path, out: str | Path, workers: int = 1, scan_progress: ProgressCallback | None = None, log=None,
         patient_key_file: str | Path | None = None):
    """The CT series under ``dicom_dir``, from the header manifest in ``out`` (made if needed).

    Returns ``(ScanResult, headers_read)``; ``ich-edge prepare --scan-only`` stops here.
    A non-empty ``out`` that is not a cache is refused (:func:`claim_cache_folder`).
    """
    dicom_dir = Path(dicom_dir)
    if not dicom_dir.exists():
        raise NoSeriesError(f"{dicom_dir} does not exist; pass the folder holding the .dcm files with --dicom")
    claim_cache_folder(out)
    found = scan_with_manifest(dicom_dir, out, workers=workers, progress=scan_progress, wait=log, key_file=patient_key_file)
    result = group_series(found.headers, dicom_dir)
    if not result.series:
        first = f" ({result.problems[0]})" if result.problems else ""
        raise NoSeriesError(f"no readable CT series found in {dicom_dir}{first}; pass a folder of head-CT .dcm files")
    return result, found.headers_read


def _execute(tasks: list[_Task], workers: int, progress: ProgressCallback | None):
    """Yield an :class:`_Outcome` per task, in a process pool when ``workers > 1``."""
    total = len(tasks)
    if workers <= 1 or total <= 1:
        for done, task in enumerate(tasks, start=1):
            yield _run_task(task)
            if progress:
                progress(done, total)
        return
    pool = ProcessPoolExecutor(max_workers=min(workers, total))
    try:
        futures = [pool.submit(_run_task, task) for task in tasks]
        for done, future in enumerate(as_completed(futures), start=1):
            try:
                outcome = future.result()
            except BrokenProcessPool as err:
                raise IchEdgeError(
                    "a prepare worker process died (out of memory?); run the same command again to resume, "
                    "with fewer --workers"
                ) from err
            yield outcome
            if progress:
                progress(done, total)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def prepare(
    dicom_dir: str | Path,
    out: str | Path,
    labels_csv: str | Path | None = None,
    preprocess: PreprocessConfig = PreprocessConfig(),
    workers: int | None = None,
    shard: tuple[int, int] = (0, 1),
    progress: ProgressCallback | None = None,
    series_filter: SeriesFilter = SeriesFilter(),
    scan_progress: ProgressCallback | None = None,
    log=None,
    patient_key_file: str | Path | None = None,
) -> PrepareSummary:
    """Decode every CT series under ``dicom_dir`` (of this shard) into the cache ``out``.

    Parameters
    ----------
    dicom_dir : path
        A series folder or a flat folder of mixed series (RSNA layout); searched recursively.
    out : path
        The cache folder, created if needed. An existing cache must have been made with the
        same ``preprocess`` (:class:`CacheError` otherwise); its series are not redone.
    labels_csv : path, optional
        RSNA ``ID,Label`` CSV (slice labels) or study-level CSV (study labels only).
    preprocess : PreprocessConfig
        Windows and input size (default: 128 px, brain/subdural/bone).
    workers : int, optional
        Worker processes (1: in this process; default :func:`default_workers`, every core).
    shard : (i, n)
        Prepare only the series with ``shard_of(series_uid, n) == i``.
    progress : callable, optional
        ``progress(done, total)`` after each series.
    series_filter : SeriesFilter
        Which CT series to leave out (localizers, fragments, non-axial series).
    scan_progress : callable, optional
        ``progress(done, total)`` while headers are read (not called when the manifest is reused).
    log : callable, optional
        Called with a line when this run waits for another shard's header scan.
    patient_key_file : path, optional
        The key of the patient pseudonyms (e.g. the training cache's ``patient.key``, so that a
        test cache agrees with it on patients); default: the cache's own, made once
        (:func:`ich_edge.dicom.privacy.patient_key`).

    Returns
    -------
    PrepareSummary
        Counts and problems; the problems are also written to ``CACHE/problems/<i>-of-<n>.json``.

    Raises
    ------
    NoSeriesError
        ``dicom_dir`` is missing or holds no readable CT series.
    LabelsError, CacheError, ConfigError
        Unreadable labels, a cache made with other preprocessing, bad ``workers``/``shard``.
    """
    started = time.perf_counter()
    shard, workers = _check_arguments(shard, workers, preprocess, series_filter)
    dicom_dir = Path(dicom_dir)
    labels = _Labels(labels_csv)
    if (Path(out) / PREPROCESS_FILE).exists():
        _open_cache(out, preprocess)  # other preprocessing is refused before the scan
    found, headers_read = scan(dicom_dir, out, workers, scan_progress, log, patient_key_file)
    cache = _open_cache(out, preprocess)
    plan = _plan(found, cache, shard, series_filter, labels, preprocess)
    done = _run_plan(plan, workers, progress)
    summary = _summarise(cache, shard, plan, done, skipped_inputs=len(found.problems), headers_read=headers_read,
                         elapsed_s=time.perf_counter() - started)
    report = {"dicom_dir": str(dicom_dir), "labels_csv": None if labels.path is None else str(labels.path), **summary.to_dict()}
    write_json_atomic(summary.problems_path, report)
    _refuse_empty(summary, cache)
    return summary


def _summarise(cache: Cache, shard: tuple[int, int], plan: "_Plan", done: "_Done", *, skipped_inputs: int,
               headers_read: int, elapsed_s: float) -> PrepareSummary:
    """The counts of the plan and of the decoded series, problems in order without repeats."""
    return PrepareSummary(
        cache_dir=cache.root,
        shard=shard,
        prepared_series=done.prepared,
        prepared_slices=done.slices,
        cached_series=plan.cached,
        skipped_series=plan.skipped + done.skipped,
        skipped_inputs=skipped_inputs,
        other_shard_series=plan.other,
        headers_read=headers_read,
        problems=tuple(dict.fromkeys([*plan.problems, *done.problems])),
        problems_path=problems_file(cache.root, shard),
        elapsed_s=elapsed_s,
    )


def _refuse_empty(summary: PrepareSummary, cache: Cache) -> None:
    """Step 5: a run whose every series was skipped, leaving the cache empty, is an error (exit 3).

    ``inspect`` and ``predict`` end with exit 3 on such input; so does prepare, instead of
    leaving an empty cache that train would refuse later.
    """
    own = summary.prepared_series + summary.cached_series + summary.skipped_series
    if own and not summary.prepared_series and not summary.cached_series and len(cache) == 0:
        first = summary.problems[0] if summary.problems else None
        why = f" (first: {first.item}: {first.reason})" if first else ""
        raise CacheError(f"prepared no series: all {summary.skipped_series} series were skipped{why}; "
                         f"every reason is in {summary.problems_path}")


def _check_arguments(shard, workers, preprocess, series_filter) -> tuple[tuple[int, int], int]:
    """Step 1 of :func:`prepare`: the checked shard and worker count (ConfigError otherwise)."""
    shard = _check_shard(shard)
    workers = default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    if not isinstance(preprocess, PreprocessConfig):
        raise ConfigError(f"preprocess must be a PreprocessConfig, got {type(preprocess).__name__}")
    if not isinstance(series_filter, SeriesFilter):
        raise ConfigError(f"series_filter must be a SeriesFilter, got {type(series_filter).__name__}")
    return shard, workers


def _open_cache(out: str | Path, preprocess: PreprocessConfig) -> Cache:
    """Step 2: the cache to write; one made with other preprocessing is refused (exit 3, add --force)."""
    try:
        return Cache.create(out, preprocess)
    except CacheError as err:
        if "other preprocessing" in str(err):
            raise CacheError(f"{err}, or add --force to start over") from err
        raise


@dataclass
class _Plan:
    """What :func:`prepare` will decode, and what it leaves out (with the reasons)."""

    tasks: list[_Task]
    problems: list[Problem]
    cached: int = 0
    other: int = 0
    skipped: int = 0


def _plan(found, cache: Cache, shard: tuple[int, int], series_filter: SeriesFilter, labels: _Labels,
          preprocess: PreprocessConfig) -> _Plan:
    """Step 3: one task per series of this shard that is not cached, filtered out, or unlabelled."""
    plan = _Plan(tasks=[], problems=[_split_problem(p) for p in found.problems])
    for series in found.series:
        if shard_of(series.series_uid, shard[1]) != shard[0]:
            plan.other += 1
            continue
        if cache.has(series.series_uid):
            plan.cached += 1
            continue
        plan.problems.extend(Problem(series.series_uid, p) for p in series.problems)
        reason = series_filter.reason_to_skip(series)
        if reason is not None:
            plan.problems.append(Problem(series.series_uid, f"skipped: {reason}"))
            plan.skipped += 1
            continue
        if not series.study_uid:
            plan.problems.append(Problem(series.series_uid, "no (0020,000D) Study Instance UID; the series uid stands for its study"))
        if not series.patient_uid:
            plan.problems.append(Problem(series.series_uid, "no (0010,0020) Patient ID; the study stands for its patient in the split"))
        try:
            slice_rows, study_row = labels.for_series(series)
        except _MissingLabels as err:
            plan.problems.append(Problem(series.series_uid, f"skipped: {err}"))
            plan.skipped += 1
            continue
        plan.tasks.append(_Task(series, slice_rows, study_row, cache.root, preprocess))
    return plan


@dataclass
class _Done:
    """Counts and problems of the decoded series."""

    prepared: int = 0
    slices: int = 0
    skipped: int = 0
    problems: list = field(default_factory=list)


def _run_plan(plan: _Plan, workers: int, progress: ProgressCallback | None) -> _Done:
    """Step 4: decode the planned series (in ``workers`` processes); failures become problems."""
    done = _Done()
    for outcome in _execute(plan.tasks, workers, progress):
        if outcome.error is not None:
            done.problems.append(Problem(outcome.series_uid, f"skipped: {outcome.error}"))
            done.skipped += 1
            continue
        done.prepared += 1
        done.slices += outcome.num_slices
        done.problems.extend(Problem(outcome.series_uid, p) for p in outcome.problems)
    return done


def start_over(out: str | Path, shard: tuple[int, int] = (0, 1)) -> None:
    """``prepare --force``: empty the cache in ``out`` so that it is prepared again from scratch.

    Refused for one shard of several (the other shards' jobs share the folder), for a
    non-empty folder that prepare did not write and for a cache holding anything prepare
    does not write (:func:`ich_edge.fileio.refuse_existing`): nothing but a cache is deleted.
    """
    out = Path(out)
    if not output_exists(out):
        return
    if _check_shard(shard)[1] > 1:
        raise ConfigError("--force empties the whole cache: run it once without --shard, then start the shards")
    if output_owner(out) is None and (out / PREPROCESS_FILE).is_file():
        mark_output(out, "prepare")  # a cache from before markers
    refuse_existing(out, True, "prepare --out", written=cache_entries())
    shutil.rmtree(out)
