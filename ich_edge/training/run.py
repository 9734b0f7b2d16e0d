"""The run folder (RUN_DIR) written by ``ich-edge train`` and read by qat, convert and parity.

Layout::

    RUN_DIR/config.json       train, model, sequence, preprocess and data sections; "quantized"
    RUN_DIR/split.json        train/validation study uids and the split seed
    RUN_DIR/model.keras       the whole CNN-LSTM (window in, per-slice probabilities out)
    RUN_DIR/thresholds.json   {"specificity": 0.9, "slice": {label: t}, "study": {label: t}}
    RUN_DIR/history.json      per-epoch loss, val_loss, seconds, learning rate
    RUN_DIR/report.json|.md   metrics of the model and the trivial baseline
    RUN_DIR/*.png             loss curves, ROC curves
    RUN_DIR/checkpoints/      state.json plus the last and best TF checkpoints (resume)

A QAT_DIR has the same layout with ``"quantized": true``; its encoder holds TFMOT
QuantizeWrapper layers, so :func:`load_run` takes the custom-object scope that knows them.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from ich_edge import LABELS
from ich_edge.fileio import atomic_output, write_json_atomic
from ich_edge.errors import ModelError
from ich_edge.sequence import SequenceConfig
from ich_edge.training.keras import keras
from ich_edge.training.model import ModelConfig, split_model
from ich_edge.transforms import PreprocessConfig

CONFIG_FILE = "config.json"
SPLIT_FILE = "split.json"
MODEL_FILE = "model.keras"
THRESHOLDS_FILE = "thresholds.json"
HISTORY_FILE = "history.json"
CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.json"


@dataclass(frozen=True)
class Run:
    """A loaded run: its configuration, the three models sharing weights, the thresholds."""

    path: Path
    config: dict
    model_config: ModelConfig
    sequence_config: SequenceConfig
    preprocess_config: PreprocessConfig
    encoder: object
    head: object
    model: object
    thresholds: dict | None

    @property
    def quantized(self) -> bool:
        return bool(self.config.get("quantized", False))

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's outputs by name, in its order (config ``labels``; the six for older runs)."""
        return tuple(self.config.get("labels") or LABELS)


def read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as err:
        raise ModelError(f"{path} is missing: {what}") from err
    except json.JSONDecodeError as err:
        raise ModelError(f"{path} is not valid JSON ({err}); train again into a new --out") from err


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


def load_model_file(path: str | Path, custom_object_scope=None):
    """Load a ``.keras`` CNN-LSTM without compiling it, inside ``custom_object_scope`` if given."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path} is missing; train a model first (`ich-edge train --out {path.parent}`)")
    scope = custom_object_scope if custom_object_scope is not None else contextlib.nullcontext()
    try:
        with scope:
            return keras.models.load_model(path, compile=False)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ModelError(
            f"{path} cannot be loaded ({err}); a QAT model needs the quantize scope "
            "(tfmot.quantization.keras.quantize_scope())"
        ) from err


def parse_run_config(config: dict, path: Path, remedy: str) -> tuple[ModelConfig, SequenceConfig, PreprocessConfig]:
    """The model, sequence and preprocessing sections of a run's config.json."""
    try:
        return (
            ModelConfig.from_dict(config["model"]),
            SequenceConfig.from_dict(config["sequence"]),
            PreprocessConfig.from_dict(config["preprocess"]),
        )
    except KeyError as err:
        raise ModelError(f"{path} lacks the {err} section; {remedy}") from err


def load_run(run_dir: str | Path, custom_object_scope=None) -> Run:
    """Load RUN_DIR: config, encoder, head, whole model and thresholds (None if not written).

    Parameters
    ----------
    run_dir : a folder written by ``ich-edge train`` (or ``ich-edge qat``).
    custom_object_scope : context manager active while deserializing, e.g.
        ``tfmot.quantization.keras.quantize_scope()`` for a QAT_DIR.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ModelError(f"{run_dir} is not a run folder; pass the --out of `ich-edge train`")
    config = read_json(run_dir / CONFIG_FILE, "not a run folder written by `ich-edge train`")
    model_config, sequence_config, preprocess_config = parse_run_config(
        config, run_dir / CONFIG_FILE, "train again into a new --out"
    )
    model = load_model_file(run_dir / MODEL_FILE, custom_object_scope)
    encoder, head = split_model(model)
    thresholds_path = run_dir / THRESHOLDS_FILE
    thresholds = read_json(thresholds_path, "thresholds") if thresholds_path.is_file() else None
    return Run(run_dir, config, model_config, sequence_config, preprocess_config, encoder, head, model, thresholds)
