"""One ich-edge ``.tflite``, read once: bytes, checks, hash, op summary and description.

:meth:`ModelFile.open` is the one place a verb reads a model file. It reads the bytes once,
validates them once (:func:`~ich_edge.runtime.model_check.check_model`: the flatbuffer,
the signatures and the embedded description), hashes them, and parses the description once
into :class:`ModelSettings` (labels, preprocessing, sequence rule, operating points). The
interpreter and LiteRT's CompiledModel are then built from :attr:`ModelFile.data`, so
LiteRT does not read the file a second time either.

Runtime tier: numpy, flatbuffers and ``ai_edge_litert.schema_py_generated`` only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ich_edge.errors import ConfigError, ModelError
from ich_edge.runtime import flatbuffer as fb
from ich_edge.runtime.description import summarize_ops
from ich_edge.runtime.model_check import check_model
from ich_edge.sequence import SequenceConfig
from ich_edge.transforms import PreprocessConfig

#: Probability threshold used only when a model carries no thresholds (said in the output).
FALLBACK_THRESHOLD = 0.5


@dataclass(frozen=True)
class OperatingPoints:
    """Thresholds at which a probability counts as positive, per label.

    Attributes
    ----------
    labels : output labels, in the model's output order.
    slice_thresholds, study_thresholds : label -> threshold (positive when p >= threshold).
    source : where the thresholds come from, for reports.
    """

    labels: tuple[str, ...]
    slice_thresholds: dict[str, float]
    study_thresholds: dict[str, float]
    source: str

    @classmethod
    def from_description(cls, description: dict) -> "OperatingPoints":
        """Thresholds from a model description's ``thresholds`` ({"slice": ..., "study": ...})."""
        labels = tuple(description["labels"])
        stored = description.get("thresholds") or {}
        levels = {}
        for level in ("slice", "study"):
            table = stored.get(level) or {}
            levels[level] = {label: float(table.get(label, FALLBACK_THRESHOLD)) for label in labels}
        complete = all(label in (stored.get(level) or {}) for level in ("slice", "study") for label in labels)
        source = "model description" if complete else f"default {FALLBACK_THRESHOLD} where the model has none"
        return cls(labels, levels["slice"], levels["study"], source)


@dataclass(frozen=True)
class ModelSettings:
    """What an ich-edge description prescribes, typed: everything predict needs to run the model.

    Attributes
    ----------
    labels : output labels, in the model's output order.
    precision : the conversion recipe (``fp32``, ``qat-int8``, ...; ``unknown`` if unnamed).
    preprocessing : HU windows, input size and resize rule of the slices.
    sequence : window and stride of the recurrent head.
    points : slice and study thresholds per label.
    """

    labels: tuple[str, ...]
    precision: str
    preprocessing: PreprocessConfig
    sequence: SequenceConfig
    points: OperatingPoints

    @classmethod
    def from_description(cls, description: dict, source: str = "model") -> "ModelSettings":
        """Parse a description dict; :class:`ModelError` naming ``source`` if a part is missing or invalid."""
        try:
            settings = cls(
                labels=tuple(description["labels"]),
                precision=str(description.get("precision", "unknown")),
                preprocessing=PreprocessConfig.from_dict(description["preprocessing"]),
                sequence=SequenceConfig.from_dict(description["sequence"]),
                points=OperatingPoints.from_description(description),
            )
        except (KeyError, TypeError, ValueError, ConfigError) as err:
            raise ModelError(
                f"{source}: the embedded ich-edge description lacks {err}; re-convert the model with `ich-edge convert`"
            ) from err
        if not settings.labels:
            raise ModelError(f"{source}: the embedded description lists no labels; re-convert it with `ich-edge convert`")
        return settings


@dataclass(frozen=True, eq=False)
class ModelFile:
    """A ``.tflite`` read and checked once; build interpreters from :attr:`data`, not from the path.

    Attributes
    ----------
    path : the file (None for a model given as bytes).
    source : how messages name it (the path, or ``<model bytes>``).
    data : the file's bytes, exactly as read.
    sha256 : SHA-256 of :attr:`data`, hex.
    description : the embedded description as a dict (``{}`` for a foreign file opened with
        ``ich_edge=False`` that has none).
    tree : the flatbuffer object tree (``ModelT``) the check parsed.
    settings : the typed description; None for a file opened with ``ich_edge=False``.
    """

    path: Path | None
    source: str
    data: bytes
    sha256: str
    description: dict
    tree: Any
    settings: ModelSettings | None

    @classmethod
    def open(cls, path: str | Path, ich_edge: bool = True) -> "ModelFile":
        """Read ``path`` once and check it (see :func:`~ich_edge.runtime.model_check.check_model`).

        ``ich_edge=False`` accepts any valid TFLite file (bench's op summary of a foreign
        model); :attr:`settings` is then None.

        Raises
        ------
        ModelError
            The file is missing, unreadable, damaged, or (with ``ich_edge``) not an ich-edge model;
            the message says what to do.
        """
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such model file; pass a .tflite written by `ich-edge convert`")
        data, source = fb.read_bytes(path)
        return cls.from_bytes(data, source, ich_edge=ich_edge, path=path)

    @classmethod
    def from_bytes(
        cls, data: bytes, source: str = "<model bytes>", ich_edge: bool = True, path: str | Path | None = None
    ) -> "ModelFile":
        """A :class:`ModelFile` of bytes already in memory (``path``: where they came from, if anywhere)."""
        data = bytes(data)
        checked = check_model(data, ich_edge=ich_edge, source=source)
        settings = ModelSettings.from_description(checked.description, source) if ich_edge else None
        return cls(
            path=None if path is None else Path(path),
            source=source,
            data=data,
            sha256=hashlib.sha256(data).hexdigest(),
            description=checked.description,
            tree=checked.tree,
            settings=settings,
        )

    @property
    def size_bytes(self) -> int:
        """Size of the file in bytes."""
        return len(self.data)

    @cached_property
    def ops(self) -> dict:
        """The :func:`~ich_edge.runtime.description.op_summary` of this file (computed on first use)."""
        return summarize_ops(self.tree)

    def stateful_signatures(self) -> dict[str, int]:
        """``{signature: number of variable tensors}`` of the signatures that keep state between invocations."""
        return {sig: info["variable_tensors"] for sig, info in self.ops.items() if info["variable_tensors"]}

    def require_settings(self) -> ModelSettings:
        """:attr:`settings`, or :class:`ModelError` for a file opened with ``ich_edge=False``."""
        if self.settings is None:
            raise ModelError(f"{self.source} was opened as a foreign TFLite file; open it with ModelFile.open(path)")
        return self.settings
