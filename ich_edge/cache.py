"""The prepared cache: each series decoded once, windowed uint8 at the model's input size.

Layout of a cache folder::

    CACHE/preprocess.json          PreprocessConfig used for every series (must match)
    CACHE/series/<key>.npz         one file per series (key: sha1 of the SeriesInstanceUID)
    CACHE/problems/<shard>.json    what prepare skipped and why (one file per shard)

Each ``.npz`` holds ``images`` uint8 (N, S, S, 3) bottom to top, ``slice_labels`` int8
(N, 6) with -1 where slice labels are unknown, ``study_labels`` int8 (6,) (-1 if unknown),
``slice_ids`` (N,) str, ``series_uid`` and ``study_uid`` (0-d str). Runtime tier: numpy only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ich_edge import LABELS
from ich_edge.errors import CacheError
from ich_edge.fileio import write_atomic_bytes, write_json_atomic
from ich_edge.transforms import PreprocessConfig

PREPROCESS_FILE = "preprocess.json"
SERIES_DIR = "series"
PROBLEMS_DIR = "problems"


def series_key(series_uid: str) -> str:
    """File stem of a series in the cache (stable, filesystem-safe)."""
    return hashlib.sha1(series_uid.encode("utf-8")).hexdigest()[:20]


@dataclass(frozen=True)
class CachedSeries:
    """One series as stored in the cache."""

    series_uid: str
    study_uid: str
    images: np.ndarray
    slice_labels: np.ndarray
    study_labels: np.ndarray
    slice_ids: tuple[str, ...]

    @property
    def num_slices(self) -> int:
        return int(self.images.shape[0])

    @property
    def has_slice_labels(self) -> bool:
        return bool((self.slice_labels >= 0).all())

    @property
    def has_study_labels(self) -> bool:
        return bool((self.study_labels >= 0).all())


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
        (root / SERIES_DIR).mkdir(parents=True, exist_ok=True)
        write_json_atomic(config_path, preprocess.to_dict())
        return cls(root, preprocess)

    @classmethod
    def open(cls, root: str | Path) -> "Cache":
        """Open an existing cache; :class:`CacheError` says how to make one if it is missing."""
        root = Path(root)
        config_path = root / PREPROCESS_FILE
        if not config_path.is_file():
            raise CacheError(f"{root} is not a prepared cache (no {PREPROCESS_FILE}); run `ich-edge prepare --out {root}` first")
        try:
            preprocess = PreprocessConfig.from_dict(json.loads(config_path.read_text()))
        except json.JSONDecodeError as err:
            raise CacheError(f"{config_path} is not valid JSON; delete the cache and prepare again") from err
        return cls(root, preprocess)

    def path_for(self, series_uid: str) -> Path:
        return self.root / SERIES_DIR / f"{series_key(series_uid)}.npz"

    def has(self, series_uid: str) -> bool:
        return self.path_for(series_uid).is_file()

    def write(self, item: CachedSeries) -> Path:
        """Store one series atomically (a killed prepare leaves no half-written file)."""
        size = self.preprocess.input_size_px
        if item.images.dtype != np.uint8 or item.images.shape[1:] != (size, size, 3):
            raise CacheError(f"images must be uint8 (N, {size}, {size}, 3), got {item.images.dtype} {item.images.shape}")
        if item.slice_labels.shape != (item.num_slices, len(LABELS)) or len(item.slice_ids) != item.num_slices:
            raise CacheError("slice_labels and slice_ids must have one row per image")
        path = self.path_for(item.series_uid)
        arrays = dict(
            images=item.images,
            slice_labels=item.slice_labels.astype(np.int8),
            study_labels=np.asarray(item.study_labels, np.int8),
            slice_ids=np.asarray(item.slice_ids, dtype=str),
            series_uid=np.asarray(item.series_uid),
            study_uid=np.asarray(item.study_uid),
        )
        write_atomic_bytes(path, lambda handle: np.savez(handle, **arrays))
        return path

    def series_paths(self) -> list[Path]:
        """All series files, in a stable order."""
        return sorted((self.root / SERIES_DIR).glob("*.npz"))

    def __len__(self) -> int:
        return len(self.series_paths())

    @staticmethod
    def read(path: str | Path) -> CachedSeries:
        """Load one series file."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return CachedSeries(
                    series_uid=str(data["series_uid"]),
                    study_uid=str(data["study_uid"]),
                    images=data["images"],
                    slice_labels=data["slice_labels"],
                    study_labels=data["study_labels"],
                    slice_ids=tuple(str(s) for s in data["slice_ids"]),
                )
        except (OSError, KeyError, ValueError) as err:
            raise CacheError(f"{path} is damaged ({err}); delete it and run prepare again to redo that series") from err

    def load_all(self) -> list[CachedSeries]:
        """Every series in the cache (in memory; the demo cache is a few hundred MB)."""
        paths = self.series_paths()
        if not paths:
            raise CacheError(f"{self.root} holds no prepared series; run `ich-edge prepare` first")
        return [self.read(p) for p in paths]
