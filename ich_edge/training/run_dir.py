"""A run folder, read once: RUN_DIR (``ich-edge train``), QAT_DIR (``ich-edge qat``) or the
RUN_DIR of an imported model (``ich-edge import``).

Layout::

    RUN_DIR/config.json       train, model, sequence, preprocess and data sections; "quantized"
                              (a QAT_DIR), "import" (an imported model's RUN_DIR)
    RUN_DIR/split.json        train/validation study uids and the split seed
    RUN_DIR/model.keras       the whole CNN-LSTM (window in, per-slice probabilities out)
    RUN_DIR/thresholds.json   {"specificity": 0.9, "slice": {label: t}, "study": {label: t}}
    RUN_DIR/history.json      per-epoch loss, val_loss, seconds, learning rate
    RUN_DIR/report.json|.md   metrics of the model and the trivial baseline
    RUN_DIR/*.png             loss curves, ROC curves
    RUN_DIR/checkpoints/      state.json plus the last and best TF checkpoints (resume)

:meth:`RunDir.open` reads config.json, split.json and thresholds.json once; a command opens
each folder it is given once and passes the :class:`RunDir` down. This module does not import
TensorFlow: the typed model section (:class:`ich_edge.training.model.ModelConfig`), the typed
split and the Keras models (:meth:`RunDir.load_keras`, :mod:`ich_edge.training.run_load`) load
when first asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ich_edge import LABELS, fileio
from ich_edge.errors import ModelError
from ich_edge.sequence import SequenceConfig
from ich_edge.transforms import PreprocessConfig

CONFIG_FILE = "config.json"
SPLIT_FILE = "split.json"
MODEL_FILE = "model.keras"
THRESHOLDS_FILE = "thresholds.json"
HISTORY_FILE = "history.json"
REPORT_FILE = "report.json"
CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.json"

#: :attr:`RunDir.kind`: written by ``ich-edge train``, ``ich-edge qat``, ``ich-edge import``.
FLOAT, QAT, IMPORTED = "float", "qat", "imported"
#: How to get a good folder again, by kind.
REMEDIES = {FLOAT: "train again into a new --out", QAT: "run `ich-edge qat` again into a new --out",
            IMPORTED: "run `ich-edge import` again into a new --out"}
NOT_A_RUN = "not a run folder; pass the --out of `ich-edge train`, `ich-edge qat` or `ich-edge import`"


def model_sha256(run_path: str | Path) -> str | None:
    """sha256 of ``run_path``/model.keras, None when the folder has none."""
    model = Path(run_path) / MODEL_FILE
    return fileio.sha256_of(model) if model.is_file() else None


def read_json(path: Path, what: str, remedy: str = REMEDIES[FLOAT]) -> dict:
    """A run folder's JSON file (:func:`ich_edge.fileio.read_json`, raising :class:`ModelError`)."""
    return fileio.read_json(path, what, remedy, ModelError)


@dataclass(frozen=True)
class Run:
    """A loaded run: its configuration, the three models sharing weights, the thresholds."""

    path: Path
    config: dict
    model_config: object
    sequence_config: SequenceConfig
    preprocess_config: PreprocessConfig
    encoder: object
    head: object
    model: object
    thresholds: dict | None
    #: The folder it was loaded from (None for a run built in memory, e.g. at the end of training).
    run_dir: RunDir | None = field(default=None, repr=False, compare=False)

    @property
    def quantized(self) -> bool:
        return bool(self.config.get("quantized", False))

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's outputs by name, in its order (config ``labels``; the six for older runs)."""
        return tuple(self.config.get("labels") or LABELS)


@dataclass(frozen=True, eq=False)
class RunDir:
    """A run folder's files, read once by :meth:`open`; the Keras models by :meth:`load_keras`.

    Compared and hashed by identity: one opened folder (and its loaded models) per command.

    Attributes
    ----------
    path : the folder.
    config : config.json.
    split_data : split.json (None when absent, e.g. an imported model's RUN_DIR).
    thresholds : thresholds.json (None when absent).
    """

    path: Path
    config: dict
    split_data: dict | None = None
    thresholds: dict | None = None
    _loaded: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Read ``path``'s config.json (required), split.json and thresholds.json (when present), once."""
        path = Path(path)
        if not path.is_dir():
            raise ModelError(f"{path} is {NOT_A_RUN}")
        config = read_json(path / CONFIG_FILE, NOT_A_RUN)
        if not isinstance(config, dict):
            raise ModelError(f"{path / CONFIG_FILE} holds no JSON object; {REMEDIES[FLOAT]}")
        split = path / SPLIT_FILE
        thresholds = path / THRESHOLDS_FILE
        return cls(path, config, read_json(split, "the train/validation split") if split.is_file() else None,
                   read_json(thresholds, "thresholds") if thresholds.is_file() else None)

    @classmethod
    def of(cls, run_dir: RunDir | str | Path) -> RunDir:
        """``run_dir`` itself when it is a :class:`RunDir`, else the folder opened (:meth:`open`)."""
        return run_dir if isinstance(run_dir, RunDir) else cls.open(run_dir)

    @property
    def kind(self) -> str:
        """"qat" (``"quantized": true``), "imported" (an ``import`` section) or "float"."""
        if self.config.get("quantized"):
            return QAT
        return IMPORTED if self.config.get("import") else FLOAT

    @property
    def quantized(self) -> bool:
        return self.kind == QAT

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's outputs by name, in its order (config ``labels``; the six for older runs)."""
        return tuple(self.config.get("labels") or LABELS)

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    def _section(self, name: str) -> dict:
        try:
            return self.config[name]
        except KeyError as err:
            raise ModelError(f"{self.path / CONFIG_FILE} lacks the {err} section; {REMEDIES[self.kind]}") from err

    @cached_property
    def sequence_config(self) -> SequenceConfig:
        return SequenceConfig.from_dict(self._section("sequence"))

    @cached_property
    def preprocess_config(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self._section("preprocess"))

    @cached_property
    def model_config(self):
        """The typed model section (:class:`ich_edge.training.model.ModelConfig`; imports TensorFlow)."""
        from ich_edge.training.model import ModelConfig

        return ModelConfig.from_dict(self._section("model"))

    @cached_property
    def split(self):
        """The typed split (:class:`ich_edge.training.data.Split`; imports TensorFlow), None without split.json."""
        from ich_edge.training.data import Split

        return None if self.split_data is None else Split.from_dict(self.split_data)

    @cached_property
    def report(self) -> dict | None:
        """report.json, or None when it is missing or unreadable (an imported model has none)."""
        return fileio.read_optional_json(self.path / REPORT_FILE)

    def load_keras(self, custom_object_scope=None) -> Run:
        """The Keras models as a :class:`Run`, loaded once per RunDir (later calls return the same Run).

        A float or imported RUN_DIR loads model.keras (inside ``custom_object_scope`` when given;
        such a load is not kept); a QAT_DIR rebuilds the TFMOT architecture from config.json and
        loads model.keras's weights (:func:`ich_edge.training.run_load.load_models`).
        """
        if custom_object_scope is None and "run" in self._loaded:
            return self._loaded["run"]
        from ich_edge.training.run_load import load_models

        encoder, head, model = load_models(self, custom_object_scope)
        run = Run(self.path, self.config, self.model_config, self.sequence_config, self.preprocess_config, encoder, head,
                  model, self.thresholds, run_dir=self)
        if custom_object_scope is None:
            self._loaded["run"] = run
        return run
