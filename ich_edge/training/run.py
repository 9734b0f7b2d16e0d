"""The run folder (RUN_DIR) written by ``ich-edge train`` and read by qat, convert and parity.

The folder's layout and its one read: :mod:`ich_edge.training.run_dir` (:class:`RunDir`, its
file names and :class:`Run` are re-exported here). This module writes the folder's files and
loads it (:func:`load_run`, a call on :meth:`RunDir.load_keras`).
"""

from __future__ import annotations

from pathlib import Path

from ich_edge.fileio import atomic_output, write_json_atomic
from ich_edge.training.run_dir import (  # noqa: F401 (the folder's names, re-exported)
    CHECKPOINT_DIR, CONFIG_FILE, HISTORY_FILE, MODEL_FILE, SPLIT_FILE, STATE_FILE, THRESHOLDS_FILE, Run, RunDir, read_json,
)
from ich_edge.training.run_load import load_model_file  # noqa: F401 (re-exported)


def write_thresholds(run_dir: str | Path, specificity: float, slice_thresholds: dict, study_thresholds: dict) -> Path:
    """Write RUN_DIR/thresholds.json (per label of the model, chosen on the validation studies).

    ``slice_thresholds`` and ``study_thresholds`` are ``{label: threshold}`` for the model's
    labels, in its order (six, or a subset for an imported model).
    """
    path = Path(run_dir) / THRESHOLDS_FILE
    if list(slice_thresholds) != list(study_thresholds):
        raise ValueError(f"slice and study thresholds name different labels: {list(slice_thresholds)} vs {list(study_thresholds)}")
    data = {
        "specificity": specificity,
        "slice": {label: float(t) for label, t in slice_thresholds.items()},
        "study": {label: float(t) for label, t in study_thresholds.items()},
    }
    write_json_atomic(path, data)
    return path


def save_model(model, path: str | Path) -> Path:
    """Save a Keras model as ``path`` (``.keras``) atomically (:func:`ich_edge.fileio.atomic_output`)."""
    with atomic_output(path) as tmp:
        model.save(tmp)
    return Path(path)


def load_run(run_dir: RunDir | str | Path, custom_object_scope=None) -> Run:
    """Load a run folder (opened as :class:`RunDir`, or its path): config, encoder, head, whole
    model and thresholds (None if not written); see :meth:`RunDir.load_keras`.

    Parameters
    ----------
    run_dir : a folder written by ``ich-edge train``, ``ich-edge qat`` or ``ich-edge import``.
    custom_object_scope : context manager active while deserializing model.keras (float runs).
    """
    return RunDir.of(run_dir).load_keras(custom_object_scope)
