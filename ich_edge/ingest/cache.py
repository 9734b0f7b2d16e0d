"""The prepared cache: each series decoded once, windowed uint8 at the model's input size.

Layout of a cache folder (format 2)::

    CACHE/preprocess.json          PreprocessConfig used for every series (must match)
    CACHE/format.json              {"format": 2}
    CACHE/series/<key>.npy         images of one series, uint8 (N, S, S, 3), uncompressed
    CACHE/series/<key>.json        its metadata; written last, so it marks a complete series
    CACHE/problems/<shard>.json    what prepare skipped and why (one file per shard)
    CACHE/manifest.json.gz         the header scan shared by prepare's shards

``key`` is the sha1 of the SeriesInstanceUID. The metadata holds ``series_uid``,
``study_uid``, ``patient_uid`` (a pseudonym of (0010,0020) Patient ID, never the ID
itself), ``slice_ids``, ``slice_labels`` (N x 6, -1 where unknown) and ``study_labels``
(6, -1 if unknown). Images are bottom to top.

Reading never loads the images: :meth:`Cache.series` reads the small metadata files and
each series' ``images`` is a read-only memory map of its ``.npy``, made when the attribute
is read and released when the caller drops it, so a 145 GB cache costs the pages a caller
actually touches. Caches of format 1 (one ``.npz`` per series) are refused with a message
saying to prepare again. Runtime tier: numpy only.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ich_edge import LABELS
from ich_edge.errors import CacheError
from ich_edge.fileio import read_json, write_atomic_bytes, write_json_atomic
from ich_edge.labels import label_columns
from ich_edge.transforms import PreprocessConfig

PREPROCESS_FILE = "preprocess.json"
FORMAT_FILE = "format.json"
SERIES_DIR = "series"
PROBLEMS_DIR = "problems"
CACHE_FORMAT = 2


def series_key(series_uid: str) -> str:
    """File stem of a series in the cache (stable, filesystem-safe)."""
    return hashlib.sha1(series_uid.encode("utf-8")).hexdigest()[:20]


#: One ``np.load`` at a time: it parses the .npy header with ``ast.literal_eval``, and CPython
#: 3.11.7 (this project's) can fail when two threads build ASTs at once ("AST constructor recursion
#: depth mismatch", python/cpython#106905). Training reads series from several tf.data threads;
#: one such failure ended a 24-epoch run at epoch 14. The header parse takes microseconds.
_LOAD_LOCK = threading.Lock()


class MappedImages:
    """Where a series' images live on disk; :meth:`load` maps them read-only (nothing is read yet)."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> np.ndarray:
        try:
            with _LOAD_LOCK:
                return np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise CacheError(f"{self.path} is damaged or missing ({err}); delete it and run prepare again to redo that series") from err


class _Images:
    """Data descriptor behind ``CachedSeries.images``: an array as given, or a fresh memory map.

    A fresh map per read (no reference kept) means pages touched by one reader are released
    when it drops the array, and a process holding 25,000 series holds no open file for them.
    """

    def __set_name__(self, owner, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, obj, objtype=None):
        if obj is None:
            raise AttributeError("images")  # no class-level default: the field stays required
        value = obj.__dict__[self.slot]
        return value.load() if isinstance(value, MappedImages) else value

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.slot] = value


@dataclass(frozen=True, eq=False)
class CachedSeries:
    """One series as stored in the cache.

    ``images`` is uint8 ``(N, S, S, 3)``: the array given to the constructor, or for a series
    read from a cache a read-only ``np.memmap`` made afresh on each access (keep the array
    while you need it; index it to copy out only the slices you use). ``patient_uid`` is a
    pseudonym of the patient (see :func:`ich_edge.dicom.patient_pseudonym`); it defaults to
    ``study_uid`` when unknown. ``label_names`` names the label columns: the cache's six
    (:data:`ich_edge.LABELS`), or a model's own labels after :meth:`with_labels`.
    """

    series_uid: str
    study_uid: str
    images: np.ndarray = _Images()  # type: ignore[assignment]
    slice_labels: np.ndarray
    study_labels: np.ndarray
    slice_ids: tuple[str, ...]
    patient_uid: str | None = None
    label_names: tuple[str, ...] = LABELS

    def __post_init__(self) -> None:
        if not self.patient_uid:
            object.__setattr__(self, "patient_uid", self.study_uid)

    def with_labels(self, names) -> "CachedSeries":
        """This series with the label columns ``names`` only, in that order (images shared, not read).

        This is how a model with a subset of the labels (``ich-edge import --output-labels``) is
        compared with the cache: its outputs are ``names``. Raises :class:`LabelsError` for a
        name that is not one of this series' columns.
        """
        names = tuple(names)
        if names == self.label_names:
            return self
        columns = label_columns(names, self.label_names)
        return CachedSeries(
            series_uid=self.series_uid,
            study_uid=self.study_uid,
            images=self.__dict__["_images"],
            slice_labels=np.asarray(self.slice_labels)[:, columns],
            study_labels=np.asarray(self.study_labels)[columns],
            slice_ids=self.slice_ids,
            patient_uid=self.patient_uid,
            label_names=names,
        )

    @property
    def num_slices(self) -> int:
        """Slices in the series (from the metadata: does not map the images)."""
        return len(self.slice_ids)

    @property
    def has_slice_labels(self) -> bool:
        return bool((self.slice_labels >= 0).all())

    @property
    def has_study_labels(self) -> bool:
        return bool((self.study_labels >= 0).all())


def _check_format(root: Path) -> None:
    """Refuse a cache of another format (format 1: one ``.npz`` per series)."""
    marker = root / FORMAT_FILE
    if marker.is_file():
        found = read_json(marker, "the cache format", "delete the cache and prepare again", CacheError)
        found = found.get("format") if isinstance(found, dict) else None
        if found != CACHE_FORMAT:
            raise CacheError(f"{root} is a cache of format {found}; this ich-edge reads format {CACHE_FORMAT}: prepare again into a new --out folder")
        return
    if any((root / SERIES_DIR).glob("*.npz")):
        raise CacheError(
            f"{root} is a cache of the old format (one .npz per series, loaded whole into memory); "
            f"run `ich-edge prepare` again into a new --out folder (format {CACHE_FORMAT} is memory-mapped "
            "and records a patient pseudonym for the patient-level split)"
        )


class Cache:
    """A cache folder: ``Cache.create`` for prepare, ``Cache.open`` for training and evaluation."""

    def __init__(self, root: Path, preprocess: PreprocessConfig) -> None:
        self.root = Path(root)
        self.preprocess = preprocess

    @classmethod
    def create(cls, root: str | Path, preprocess: PreprocessConfig) -> "Cache":
        """Open ``root`` for writing, creating it; refuses a cache made with other preprocessing."""
        root = Path(root)
        config_path = root / PREPROCESS_FILE
        if config_path.exists():
            existing = cls.open(root)
            if existing.preprocess != preprocess:
                raise CacheError(
                    f"{root} was prepared with other preprocessing ({existing.preprocess}); "
                    "use a new --out folder or the same options"
                )
            return existing
        _check_format(root)
        (root / SERIES_DIR).mkdir(parents=True, exist_ok=True)
        write_json_atomic(root / FORMAT_FILE, {"format": CACHE_FORMAT})
        write_json_atomic(config_path, preprocess.to_dict())
        return cls(root, preprocess)

    @classmethod
    def open(cls, root: str | Path) -> "Cache":
        """Open an existing cache; :class:`CacheError` says how to make one if it is missing."""
        root = Path(root)
        config_path = root / PREPROCESS_FILE
        if not config_path.is_file():
            raise CacheError(f"{root} is not a prepared cache (no {PREPROCESS_FILE}); run `ich-edge prepare --out {root}` first")
        _check_format(root)
        preprocess = PreprocessConfig.from_dict(
            read_json(config_path, "the cache's preprocessing", "delete the cache and prepare again", CacheError))
        return cls(root, preprocess)

    def path_for(self, series_uid: str) -> Path:
        """The metadata file of a series (its images are the ``.npy`` beside it)."""
        return self.root / SERIES_DIR / f"{series_key(series_uid)}.json"

    def has(self, series_uid: str) -> bool:
        path = self.path_for(series_uid)
        return path.is_file() and path.with_suffix(".npy").is_file()

    def write(self, item: CachedSeries) -> Path:
        """Store one series atomically: images first, then the metadata that marks it complete."""
        size = self.preprocess.input_size_px
        images = item.images
        if images.dtype != np.uint8 or images.shape[1:] != (size, size, 3):
            raise CacheError(f"images must be uint8 (N, {size}, {size}, 3), got {images.dtype} {images.shape}")
        if item.label_names != LABELS:
            raise CacheError(f"a cache stores the six labels {', '.join(LABELS)}; got a series with {', '.join(item.label_names)}")
        if item.slice_labels.shape != (len(images), len(LABELS)) or len(item.slice_ids) != len(images):
            raise CacheError("slice_labels and slice_ids must have one row per image")
        path = self.path_for(item.series_uid)
        contiguous = np.ascontiguousarray(images)
        write_atomic_bytes(path.with_suffix(".npy"), lambda handle: np.save(handle, contiguous, allow_pickle=False))
        meta = {
            "format": CACHE_FORMAT,
            "series_uid": item.series_uid,
            "study_uid": item.study_uid,
            "patient_uid": item.patient_uid,
            "slice_ids": list(item.slice_ids),
            "slice_labels": np.asarray(item.slice_labels, np.int8).tolist(),
            "study_labels": np.asarray(item.study_labels, np.int8).tolist(),
        }
        payload = json.dumps(meta, separators=(",", ":")).encode("utf-8")
        write_atomic_bytes(path, lambda handle: handle.write(payload))
        return path

    def series_paths(self) -> list[Path]:
        """The metadata file of every complete series, in a stable order."""
        return sorted(p for p in (self.root / SERIES_DIR).glob("*.json") if not p.name.startswith("."))

    def __len__(self) -> int:
        return len(self.series_paths())

    @staticmethod
    def read(path: str | Path) -> CachedSeries:
        """One series from its metadata file; its images are mapped when read, never loaded here."""
        path = Path(path)
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            slice_labels = np.asarray(meta["slice_labels"], np.int8).reshape(-1, len(LABELS))
            return CachedSeries(
                series_uid=str(meta["series_uid"]),
                study_uid=str(meta["study_uid"]),
                images=MappedImages(path.with_suffix(".npy")),
                slice_labels=slice_labels,
                study_labels=np.asarray(meta["study_labels"], np.int8).reshape(len(LABELS)),
                slice_ids=tuple(str(s) for s in meta["slice_ids"]),
                patient_uid=meta.get("patient_uid"),
            )
        except (OSError, KeyError, ValueError, TypeError, AttributeError) as err:
            raise CacheError(f"{path} is damaged ({err}); delete it and run prepare again to redo that series") from err

    def series(self) -> list[CachedSeries]:
        """Every series of the cache, in a stable order, images memory-mapped on access (no pixels read here)."""
        paths = self.series_paths()
        if not paths:
            raise CacheError(f"{self.root} holds no prepared series; run `ich-edge prepare` first")
        return [self.read(p) for p in paths]

    #: Former name of :meth:`series` (it no longer loads anything); kept for one release.
    load_all = series
