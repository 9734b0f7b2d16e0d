"""Label tables: the RSNA 2019 slice CSV and a plain study-level CSV.

RSNA format (``stage_2_train.csv``): columns ``ID,Label`` with six rows per slice,
``ID_000012eaf_epidural,0`` ... ``ID_000012eaf_any,1``. The real file has duplicate rows;
identical duplicates are tolerated, conflicting ones are an error.

Study-level format: a header ``study_uid,epidural,...,any`` and one 0/1 row per study.

A cache always stores the six columns in :data:`ich_edge.LABELS` order; a model may output a
subset (``ich-edge import --output-labels``), named in its run config and file description.
:func:`label_columns` is the one place that turns label names into cache columns.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ich_edge import LABELS
from ich_edge.errors import LabelsError
from ich_edge.study_truth import series_truth

RSNA_HEADER = ("ID", "Label")
STUDY_HEADER = ("study_uid", *LABELS)


def check_label_names(names, what: str = "labels") -> tuple[str, ...]:
    """``names`` as a tuple, checked: at least one, distinct, each one of :data:`ich_edge.LABELS`.

    Raises :class:`LabelsError` naming the unknown or repeated names and the known ones.
    """
    names = tuple(names)
    unknown = [name for name in names if name not in LABELS]
    if unknown:
        raise LabelsError(f"{what}: unknown label(s) {', '.join(map(repr, unknown))}; the labels are {', '.join(LABELS)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated or not names:
        raise LabelsError(f"{what} must name distinct labels out of {', '.join(LABELS)}; got {', '.join(names) or 'none'}")
    return names


def label_columns(names, available=LABELS) -> np.ndarray:
    """Column indices of ``names`` in an array whose columns are ``available`` (default: a cache's six).

    ``label_columns(("intraparenchymal", "any"))`` is ``[1, 5]``. Raises :class:`LabelsError`
    for a name that is not a label, or not among ``available``.
    """
    names = check_label_names(names)
    available = tuple(available)
    missing = [name for name in names if name not in available]
    if missing:
        raise LabelsError(f"label(s) {', '.join(missing)} are not among the columns {', '.join(available)}")
    return np.array([available.index(name) for name in names], dtype=np.intp)


def canonical_order(names) -> tuple[str, ...]:
    """``names`` sorted into :data:`ich_edge.LABELS` order (the order of an imported model's outputs)."""
    names = check_label_names(names)
    return tuple(label for label in LABELS if label in names)


def _open_rows(path: Path):
    handle = open(path, newline="", encoding="utf-8")
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        handle.close()
        raise LabelsError(f"{path}: the labels CSV is empty")
    return [h.strip() for h in header], reader, handle


def read_rsna_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Read an RSNA ``ID,Label`` CSV into ``{slice_id: uint8[6]}`` in LABELS order.

    Raises :class:`LabelsError` when the header, an ID or a value is malformed, a slice
    lacks one of the six labels, or duplicate rows disagree.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"{path}: labels CSV not found")
    header, reader, handle = _open_rows(path)
    with handle:
        if tuple(header[:2]) != RSNA_HEADER:
            raise LabelsError(f"{path}: expected header 'ID,Label', got {','.join(header)!r}")
        table: dict[str, np.ndarray] = {}
        seen: dict[str, np.ndarray] = {}
        label_index = {name: i for i, name in enumerate(LABELS)}
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            key, _, label = row[0].strip().rpartition("_")
            if label not in label_index or not key:
                raise LabelsError(f"{path}:{line_no}: ID {row[0]!r} does not end in _<label> with a known label")
            try:
                value = int(float(row[1]))
            except (IndexError, ValueError) as err:
                raise LabelsError(f"{path}:{line_no}: Label must be 0 or 1, got {row[1:]!r}") from err
            if value not in (0, 1):
                raise LabelsError(f"{path}:{line_no}: Label must be 0 or 1, got {value}")
            labels = table.setdefault(key, np.zeros(len(LABELS), np.uint8))
            mask = seen.setdefault(key, np.zeros(len(LABELS), bool))
            i = label_index[label]
            if mask[i] and labels[i] != value:
                raise LabelsError(f"{path}:{line_no}: conflicting duplicate rows for {row[0]}")
            labels[i], mask[i] = value, True
    incomplete = [key for key, mask in seen.items() if not mask.all()]
    if incomplete:
        raise LabelsError(f"{path}: {len(incomplete)} slice(s) lack some of the six labels, e.g. {incomplete[0]}")
    return table


def read_study_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Read a study-level CSV (``study_uid`` plus the six label columns) into ``{study_uid: uint8[6]}``."""
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"{path}: labels CSV not found")
    header, reader, handle = _open_rows(path)
    with handle:
        missing = [name for name in STUDY_HEADER if name not in header]
        if missing:
            raise LabelsError(f"{path}: study-level CSV lacks column(s) {', '.join(missing)}")
        cols = [header.index(name) for name in STUDY_HEADER]
        table = {}
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                values = np.array([int(float(row[c])) for c in cols[1:]], np.uint8)
            except (IndexError, ValueError) as err:
                raise LabelsError(f"{path}:{line_no}: label values must be 0 or 1") from err
            if values.max(initial=0) > 1:
                raise LabelsError(f"{path}:{line_no}: label values must be 0 or 1")
            table[row[cols[0]].strip()] = values
    return table


def is_rsna_csv(path: str | Path) -> bool:
    """True when the CSV's header is RSNA's ``ID,Label``."""
    with open(path, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    return tuple(h.strip() for h in header[:2]) == RSNA_HEADER


def study_labels(slice_labels: np.ndarray) -> np.ndarray:
    """Study-level labels of one series from its ``(num_slices, 6)`` slice labels: the OR over slices.

    The series rule of :func:`ich_edge.study_truth.series_truth` (how several series fold into
    a study is :func:`ich_edge.study_truth.study_truth`).
    """
    return series_truth(None, slice_labels).astype(np.uint8)


def write_rsna_csv(path: str | Path, slice_labels: dict[str, np.ndarray]) -> None:
    """Write ``{slice_id: uint8[6]}`` as an RSNA ``ID,Label`` CSV (six rows per slice)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(RSNA_HEADER)
        for slice_id, labels in slice_labels.items():
            for name, value in zip(LABELS, labels):
                writer.writerow([f"{slice_id}_{name}", int(value)])
