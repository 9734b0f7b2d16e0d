"""Train the CNN-LSTM on a prepared cache: ``TrainConfig`` and :func:`train`.

The loop (:mod:`ich_edge.training.loop`, shared with ``ich-edge qat``) is Keras ``fit`` on
windows of consecutive slices (:mod:`ich_edge.training.data`) under a tf.distribute strategy
(:mod:`ich_edge.training.distribute`), with the loss of the
RSNA metric (binary cross-entropy per label, ``any`` weighted 2), Adam with a cosine
learning-rate schedule (one warm-up epoch), a checkpoint after every epoch, early stopping
on the validation loss and an optional time budget. After training, the best epoch's
weights are saved as RUN_DIR/model.keras, reloaded with :func:`ich_edge.training.run.load_run`
and evaluated the way the device runs (encode once, windows, stitch; see
:mod:`ich_edge.training.evaluate`); thresholds for 90% specificity are chosen on the
validation studies, and the report compares the model to the trivial baseline.

Resume: RUN_DIR/checkpoints/state.json records the finished epochs; a new call with the
same configuration continues after the last one (``epochs`` and ``max_minutes`` may change,
e.g. to train longer). A different configuration is refused unless ``resume=False``. The
check uses the cache's content identity (:func:`ich_edge.training.data.cache_identity`), not
its path, so workers or a later run may mount the cache elsewhere. With several workers
RUN_DIR must be one folder every worker sees (a shared filesystem): the workers compare the
epoch they would resume from and refuse to start when they disagree.

Reproducible: with ``deterministic`` (the default) TensorFlow's op determinism is on, the
seed fixes Python, numpy and TensorFlow generators, and the input (window plan and
augmentation draws) is a function of the seed and the epoch, so the same seed, data and
machine give the same weights and report (timings aside).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ich_edge import LABELS, __version__
from ich_edge.ingest.cache import Cache
from ich_edge.dicom.privacy import KEY_FILE, same_patient_key
from ich_edge.errors import ConfigError, OutputExistsError
from ich_edge.fileio import output_owner, refuse_foreign_folder, write_json_atomic
from ich_edge.metrics import rsna_weights
from ich_edge.sequence import SequenceConfig
from ich_edge.training import data as data_lib
from ich_edge.training import distribute
from ich_edge.training import loop
from ich_edge.training import output_prior
from ich_edge.training import report as report_lib
from ich_edge.training import run as run_lib
from ich_edge.training.keras import keras, tf
from ich_edge.training.model import MODEL_VERSION, ModelConfig, build_model, load_backbone_weights

#: TrainConfig fields that may change when a run is resumed (budgets and file locations, not the recipe).
RESUMABLE_FIELDS = ("epochs", "max_minutes", "min_epochs", "backbone_weights")
#: Learning-rate scaling with the global batch: ``linear`` multiplies by batch_size / REFERENCE_BATCH.
LR_SCALINGS = ("none", "linear")
#: Global batch the learning rate is given for under ``lr_scaling="linear"``.
REFERENCE_BATCH = 8
#: How study-label training pools slice probabilities into the study probability.
STUDY_POOLINGS = ("max", "noisy-or")
#: Where the loss comes from: per-slice labels, study labels (max over slices), or auto.
LABEL_MODES = ("auto", *data_lib.LABEL_SOURCES)


@dataclass(frozen=True)
class TrainConfig:
    """How to train (see ``ich-edge train --help``); written to RUN_DIR/config.json.

    Attributes
    ----------
    epochs : maximum number of epochs (each covers every training slice about once).
    batch_size : windows per step (global batch, split across devices and workers).
    learning_rate : peak Adam learning rate (cosine decay to 2% of it after one warm-up epoch).
    val_fraction : share of studies held out for validation (split by study, seeded).
    seed : seed of the split, the window offsets, the augmentation and the weights.
    patience : epochs without a better validation loss before stopping.
    min_epochs : epochs that always run before early stopping may end the run (None: half of
        ``epochs``). The model often sits at the label prior for several epochs before it
        finds the lesions (with the output bias at zero: epoch 4 with seed 0, epoch 8 with
        seed 1, epoch 16 with seed 2 on the demo set), with a noisy validation loss
        meanwhile; without this floor, seed 1 stopped at epoch 9 and kept its epoch-3
        weights (study AUC "any" 0.59).
    output_bias : where the output layer's bias starts: "prior" (the logit of each label's
        prevalence in the training series, weighted like the loss: see
        :mod:`ich_edge.training.output_prior`) or "zero" (every label at 0.5).
    max_minutes : stop after the epoch that would overrun this training time (None: no limit).
    flip, rotation_deg, shift_fraction, intensity_jitter : augmentation strength.
    specificity : specificity at which the operating thresholds are chosen on validation.
    positive_weight : weight of the positive term of every label's cross-entropy (1: the
        plain RSNA loss; the default 3 counters the rarity of bleeding slices, 2 to 8% per
        subtype, and raised the rare subtypes' study AUC on the synthetic demo set).
    labels : "slice" (loss per slice), "study" (study labels only: loss on the max over the
        slices of each series, for report-labelled data), or "auto" (slice when the cache
        has slice labels).
    study_pooling : study-label loss on the "max" over slices (the study rule) or on their
        "noisy-or" (a smooth max: every slice gets gradient).
    lr_scaling : "none" (``learning_rate`` as given) or "linear" (``learning_rate`` is for a
        global batch of 8 windows and is multiplied by ``batch_size / 8``).
    mixed_precision : train with the mixed_float16 policy (GPUs); the output layer and the
        loss stay float32 and model.keras is saved float32.
    deterministic : TensorFlow op determinism (same seed, data and machine: same weights).
    backbone_weights : a local weights file for the backbone (e.g. keras.applications
        MobileNetV2 ImageNet ``.h5``) loaded before the first epoch; None: random init.

    The defaults train the demo (300 synthetic studies, 128 px, width 0.5) in 24 epochs of 60
    steps. How long an epoch takes depends on the CPU far more than on its core count: the
    README's demo block gives the last measured times (``benchmarks/demo_time.py``,
    ``benchmarks/train_step.py``).
    """

    epochs: int = 24
    batch_size: int = 8
    learning_rate: float = 3e-3
    val_fraction: float = loop.VAL_FRACTION
    seed: int = 0
    patience: int = 6
    min_epochs: int | None = None
    max_minutes: float | None = None
    flip: bool = True
    rotation_deg: float = 10.0
    shift_fraction: float = 0.05
    intensity_jitter: float = 0.05
    specificity: float = 0.9
    positive_weight: float = 3.0
    labels: str = "auto"
    study_pooling: str = "max"
    lr_scaling: str = "none"
    mixed_precision: bool = False
    deterministic: bool = True
    backbone_weights: str | None = None
    output_bias: str = "prior"

    def __post_init__(self) -> None:
        if not 1 <= self.epochs <= 10_000:
            raise ConfigError(f"epochs must be in 1..10000, got {self.epochs}")
        if not 1 <= self.batch_size <= 4096:
            raise ConfigError(f"batch_size must be in 1..4096, got {self.batch_size}")
        if not 0.0 < self.learning_rate <= 1.0:
            raise ConfigError(f"learning_rate must be in (0, 1], got {self.learning_rate}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), e.g. 0.2, got {self.val_fraction}")
        if self.patience < 1:
            raise ConfigError(f"patience must be >= 1 epoch, got {self.patience}")
        if self.min_epochs is not None and self.min_epochs < 1:
            raise ConfigError(f"min_epochs must be >= 1 (or omitted for half of epochs), got {self.min_epochs}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(f"max_minutes must be > 0 (or omitted for no limit), got {self.max_minutes}")
        if not 1.0 <= self.positive_weight <= 100.0:
            raise ConfigError(f"positive_weight must be in 1..100 (1: plain RSNA loss), got {self.positive_weight}")
        if not 0.5 <= self.specificity < 1.0:
            raise ConfigError(f"specificity must be in [0.5, 1), got {self.specificity}")
        if self.labels not in LABEL_MODES:
            raise ConfigError(f"labels must be one of {LABEL_MODES}, got {self.labels!r}")
        if self.study_pooling not in STUDY_POOLINGS:
            raise ConfigError(f"study_pooling must be one of {STUDY_POOLINGS}, got {self.study_pooling!r}")
        if self.output_bias not in output_prior.OUTPUT_BIASES:
            raise ConfigError(f"output_bias must be one of {output_prior.OUTPUT_BIASES}, got {self.output_bias!r}")
        if self.lr_scaling not in LR_SCALINGS:
            raise ConfigError(f"lr_scaling must be one of {LR_SCALINGS}, got {self.lr_scaling!r}")
        self.augment  # validates the augmentation fields

    @property
    def effective_learning_rate(self) -> float:
        """Peak learning rate after ``lr_scaling``."""
        scale = self.batch_size / REFERENCE_BATCH if self.lr_scaling == "linear" else 1.0
        return self.learning_rate * scale

    @property
    def early_stopping_from(self) -> int:
        """First epoch (1-based) after which early stopping may stop the run."""
        return self.min_epochs if self.min_epochs is not None else max(1, self.epochs // 2)

    @property
    def augment(self) -> data_lib.AugmentConfig:
        return data_lib.AugmentConfig(self.flip, self.rotation_deg, self.shift_fraction, self.intensity_jitter)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@keras.saving.register_keras_serializable(package="ich_edge")
def rsna_weighted_bce(y_true, y_pred):
    """Per-position binary cross-entropy, labels weighted as the RSNA metric (``any`` x2).

    ``(B, T, 6)`` -> ``(B, T)``; the mean over positions equals
    :func:`ich_edge.metrics.rsna_log_loss` on the same slices.
    """
    return weighted_bce(y_true, y_pred, 1.0)


def weighted_bce(y, p, positive_weight: float, labels=LABELS):
    """Binary cross-entropy per label, positives scaled, summed with the RSNA weights of ``labels`` (last axis)."""
    eps = 1e-7
    p = tf.clip_by_value(p, eps, 1.0 - eps)
    y = tf.cast(y, p.dtype)
    bce = -(positive_weight * y * tf.math.log(p) + (1.0 - y) * tf.math.log(1.0 - p))
    label_weights = rsna_weights(labels)
    weights = tf.constant(label_weights / label_weights.sum(), dtype=p.dtype)
    return tf.reduce_sum(bce * weights, axis=-1)


def study_loss(positive_weight: float = 1.0, pooling: str = "max", labels=LABELS):
    """Loss on study labels: ``y_true (B, T, K)`` (the study's labels on every slice, -1 on
    padding; K = len(labels)) against the study probability pooled over the real slices -> ``(B,)``.

    ``pooling`` "max" is the study rule itself (gradient through one slice per label);
    "noisy-or" (``1 - prod(1 - p)``) is a smooth max that sends gradient to every slice.
    """
    if pooling not in STUDY_POOLINGS:
        raise ConfigError(f"study_pooling must be one of {STUDY_POOLINGS}, got {pooling!r}")

    def rsna_weighted_bce_study(y_true, y_pred):
        y_pred = tf.cast(y_pred, tf.float32)
        valid = tf.reduce_all(y_true >= 0.0, axis=-1, keepdims=True)
        masked = tf.where(valid, y_pred, tf.zeros_like(y_pred))
        if pooling == "max":
            study_p = tf.reduce_max(masked, axis=1)
        else:
            study_p = 1.0 - tf.exp(tf.reduce_sum(tf.math.log1p(-tf.clip_by_value(masked, 0.0, 1.0 - 1e-6)), axis=1))
        study_y = tf.reduce_max(y_true, axis=1)
        return weighted_bce(study_y, study_p, positive_weight, labels)

    return rsna_weighted_bce_study


def training_loss(positive_weight: float = 1.0, labels=LABELS):
    """:func:`rsna_weighted_bce`, with the positive term of each label scaled by ``positive_weight``;
    a model with a subset of the labels (``labels``, its outputs) weighs them by their RSNA weights."""
    if positive_weight == 1.0 and tuple(labels) == LABELS:
        return rsna_weighted_bce

    def rsna_weighted_bce_positive(y_true, y_pred):
        return weighted_bce(y_true, y_pred, positive_weight, labels)

    return rsna_weighted_bce_positive


def _resume_key(run_config: dict) -> dict:
    train = {k: v for k, v in run_config["train"].items() if k not in RESUMABLE_FIELDS}
    keys = ("model", "sequence", "preprocess")
    cache = run_config["data"].get("cache_identity", run_config["data"]["cache"])  # older runs: the path
    return {"train": train, **{k: run_config[k] for k in keys}, "cache": cache}


def _first_difference(old, new, prefix: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{prefix}{key}.")
    return f"{prefix.rstrip('.')}: {old!r} -> {new!r}"


#: What a run folder holds before its first epoch ends: a rerun starts it again without --force.
_STARTED_RUN = {run_lib.CONFIG_FILE, run_lib.SPLIT_FILE, run_lib.CHECKPOINT_DIR}


def _refuse_foreign_output(run_dir: Path) -> None:
    """Without ``--force``, ``--out`` must be new, empty or a run this command can continue."""
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputExistsError(f"--out {run_dir} is a file; pass a folder")
    other = sorted(p.name for p in run_dir.iterdir() if p.name not in _STARTED_RUN) if run_dir.is_dir() else []
    if other:
        raise OutputExistsError(
            f"{run_dir} exists and holds {', '.join(other[:3])}{', ...' if len(other) > 3 else ''} but no "
            "`ich-edge train` run to continue; use a new --out, or add --force to replace it"
        )


def _refuse_other_output(run_dir: Path) -> None:
    """``--force`` starts over only in a train RUN_DIR (marked, or with its config.json from before markers)."""
    if output_owner(run_dir) is None and (run_dir / run_lib.CONFIG_FILE).is_file():
        return
    refuse_foreign_folder(run_dir, "train", "train --out")


def load_state(run_dir: Path, run_config: dict, resume: bool) -> dict:
    """The previous state of RUN_DIR to continue from, or a fresh one.

    Raises :class:`OutputExistsError` (exit 3) when RUN_DIR holds a run with another configuration.
    """
    fresh = {"epoch": 0, "history": [], "best_val_loss": None, "best_epoch": 0, "best": None, "last": None, "wait": 0, "train_seconds": 0.0, "stopped": None}
    state_path = run_dir / run_lib.CHECKPOINT_DIR / run_lib.STATE_FILE
    if not resume:
        return fresh
    if not state_path.is_file():
        _refuse_foreign_output(run_dir)
        return fresh
    previous = run_lib.read_json(run_dir / run_lib.CONFIG_FILE, "RUN_DIR has checkpoints but no config.json")
    old_key, new_key = _resume_key(previous), _resume_key(run_config)
    if old_key != new_key:
        raise OutputExistsError(
            f"{run_dir} holds a run with another configuration ({_first_difference(old_key, new_key)}); "
            "use a new --out, or add --force to start over there"
        )
    state = run_lib.read_json(state_path, "checkpoint state")
    return {**fresh, **state}


class EpochEnd(loop.EpochLog):
    """Per epoch: one log line, checkpoint, state.json, early stopping and the time budget."""

    def __init__(self, strategy, write_dir: Path, chief: bool, checkpoint, state: dict, config: TrainConfig, schedule, log) -> None:
        super().__init__()
        self.strategy, self.dir, self.chief, self.checkpoint = strategy, write_dir / run_lib.CHECKPOINT_DIR, chief, checkpoint
        self.state, self.config, self.schedule, self.log = state, config, schedule, log
        self.dir.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        entry = self.epoch_entry(epoch, logs or {})
        seconds, cpu_seconds, val_loss, state = entry["seconds"], self.cpu_seconds, entry["val_loss"], self.state
        lr = float(self.schedule(self.model.optimizer.iterations))
        state["history"].append({**entry, "cpu_seconds": cpu_seconds, "learning_rate": lr})
        state["epoch"], state["train_seconds"] = epoch + 1, state["train_seconds"] + seconds
        name = f"epoch-{epoch + 1:04d}"
        self.checkpoint.write(str(self.dir / name))
        previous = {state["last"], state["best"]}
        improved = loop.improves(state["best_val_loss"], val_loss, 1e-4)
        if improved:
            state.update(best_val_loss=val_loss, best_epoch=epoch + 1, best=name, wait=0)
        else:
            state["wait"] += 1
        state["last"] = name
        mean_seconds = state["train_seconds"] / len(state["history"])
        over_budget = self.config.max_minutes is not None and state["train_seconds"] + mean_seconds > self.config.max_minutes * 60
        over_budget = distribute.any_worker(self.strategy, over_budget)
        if state["wait"] >= self.config.patience and epoch + 1 >= self.config.early_stopping_from:
            state["stopped"], self.model.stop_training = "early stopping", True
        elif over_budget:
            state["stopped"], self.model.stop_training = "time budget", True
        if self.chief:
            write_json_atomic(self.dir / run_lib.STATE_FILE, state)
            write_json_atomic(self.dir.parent / run_lib.HISTORY_FILE, state["history"])
        for old in previous - {state["last"], state["best"], None}:
            for path in self.dir.glob(f"{old}.*"):
                path.unlink(missing_ok=True)
        self.log(loop.epoch_line(f"epoch {epoch + 1}/{self.config.epochs}", entry, f" ({cpu_seconds:.0f} CPU s), lr {lr:.2e}",
                                 improved) + (f"; stopping: {state['stopped']}" if self.model.stop_training else ""))


def _checkpoint_path(name: str, write_dir: Path, run_dir: Path) -> str:
    """A checkpoint this process wrote, else the chief's in RUN_DIR (a worker resuming)."""
    for folder in (write_dir, run_dir):
        prefix = folder / run_lib.CHECKPOINT_DIR / name
        if prefix.with_name(f"{name}.index").is_file():
            return str(prefix)
    raise ConfigError(f"checkpoint {name} named in {run_dir / run_lib.CHECKPOINT_DIR / run_lib.STATE_FILE} is missing; add --force to start over")


def _load_test(test, preprocess, train_series, train_cache=None, log=None) -> list:
    cache = Cache.open(test)
    if cache.preprocess != preprocess:
        raise ConfigError(f"the test cache {test} was prepared with other preprocessing than the training cache; prepare both the same way")
    if train_cache is not None and log is not None and same_patient_key(train_cache, test) is False:
        log(f"note: the test cache {test} keys its patient pseudonyms otherwise than the training cache: only shared "
            f"studies can be found, not shared patients; prepare it with --patient-key {Path(train_cache) / KEY_FILE}")
    series = cache.series()
    overlap = data_lib.overlapping_studies(series, train_series)
    if overlap:
        raise ConfigError(
            f"{len(overlap)} test studies are in the training cache or are scans of a patient who has studies there; "
            "a held-out test set must not overlap: prepare it from other patients"
        )
    return series


def label_loss(config: TrainConfig, label_mode: str):
    """The loss of ``config`` for ``label_mode`` labels: :func:`study_loss` or :func:`training_loss`."""
    if label_mode == "study":
        return study_loss(config.positive_weight, config.study_pooling)
    return training_loss(config.positive_weight)


def compile_for_training(model, config: TrainConfig, steps: int, window: int, size_px: int, label_mode: str, loss=None):
    """:func:`ich_edge.training.loop.compile_model` with ``loss`` (default: :func:`label_loss`);
    returns ``(train_model, optimizer, schedule)``. Call inside ``strategy.scope()``."""
    return loop.compile_model(model, config, steps, window, size_px, label_loss(config, label_mode) if loss is None else loss)


class precision_policy:
    """Context: the mixed_float16 global policy while building the training model, float32 after."""

    def __init__(self, mixed: bool) -> None:
        self.mixed = mixed

    def __enter__(self):
        if self.mixed:
            keras.mixed_precision.set_global_policy("mixed_float16")
        return self

    def __exit__(self, *exc) -> None:
        keras.mixed_precision.set_global_policy("float32")


@dataclass(frozen=True)
class _Sets:
    """The cache's series split into the run's sets, and where the loss's labels come from."""

    series: list
    split: data_lib.Split
    train: list
    val: list
    test: list | None
    label_mode: str


def _model_config(cache: Cache, data, model_config: ModelConfig | None) -> ModelConfig:
    """``model_config``, defaulting to the cache's input size; refused when the sizes differ."""
    model_config = model_config or ModelConfig(input_size_px=cache.preprocess.input_size_px)
    if model_config.input_size_px != cache.preprocess.input_size_px:
        raise ConfigError(
            f"the cache {data} holds {cache.preprocess.input_size_px} px slices but the model expects "
            f"{model_config.input_size_px} px; prepare the cache at the model's size"
        )
    return model_config


def _sets(cache: Cache, config: TrainConfig, test, log=None) -> _Sets:
    """Split the cache by patient; choose the label source; load the test cache (no overlap allowed)."""
    series = cache.series()
    split = data_lib.split_studies(series, config.val_fraction, config.seed)
    train_series, val_series = loop.split_series(series, split)
    label_mode = data_lib.label_source(train_series, config.labels)
    test_series = _load_test(test, cache.preprocess, series, cache.root, log) if test else None
    return _Sets(series, split, train_series, val_series, test_series, label_mode)


def run_config_for(data, test, cache: Cache, config: TrainConfig, model_config: ModelConfig,
                   sequence_config: SequenceConfig, sets: _Sets, strategy) -> dict:
    """RUN_DIR/config.json of a training run (the resume key is taken from it)."""
    return {
        "ich_edge_version": __version__,
        "model_version": MODEL_VERSION,
        "labels": list(LABELS),
        "quantized": False,
        "train": config.to_dict(),
        "model": model_config.to_dict(),
        "sequence": sequence_config.to_dict(),
        "preprocess": cache.preprocess.to_dict(),
        "data": {
            "cache": str(Path(data).resolve()),
            "cache_identity": data_lib.cache_identity(cache.preprocess, sets.series),
            "series": len(sets.series),
            "train_studies": len(sets.split.train_studies),
            "val_studies": len(sets.split.val_studies),
            "split_seed": sets.split.seed,
            "label_source": sets.label_mode,
            "test_cache": str(Path(test).resolve()) if test else None,
        },
        "distribution": {
            "replicas": strategy.num_replicas_in_sync,
            "workers": distribute.num_workers(strategy),
            "global_batch": config.batch_size,
            "learning_rate": config.effective_learning_rate,
            "lr_scaling": config.lr_scaling,
        },
    }


def _begin(run_dir: Path, run_config: dict, split: data_lib.Split, resume: bool, strategy) -> tuple[dict, bool]:
    """The state to continue from (all workers must agree) and whether this process is the chief,
    which (re)starts RUN_DIR: config.json and split.json."""
    state = load_state(run_dir, run_config, resume)
    epochs_seen = distribute.gather_ints(strategy, state["epoch"])
    if len(set(epochs_seen)) > 1:
        raise ConfigError(
            f"the workers would resume from different epochs ({sorted(set(epochs_seen))}): RUN_DIR {run_dir} must be "
            "one folder that every worker sees (a shared filesystem mounted at the same path), or add --force to start over"
        )
    chief = distribute.is_chief(strategy)
    if chief:
        if not resume:
            _refuse_other_output(run_dir)
            shutil.rmtree(run_dir / run_lib.CHECKPOINT_DIR, ignore_errors=True)
        loop.open_run_dir(run_dir, "train")
        loop.write_run_record(run_dir, run_config, split)
    return state, chief


def _inputs(strategy, sets: _Sets, config: TrainConfig, sequence_config: SequenceConfig, state: dict, log) -> loop.Inputs:
    """The training and validation pipelines (each worker reads its share of the epoch's window plan)."""
    shares: list = []
    inputs = loop.build_inputs(strategy, sets.train, sets.val, sequence_config, config, sets.label_mode, state["epoch"], shares)
    batch = config.batch_size
    log(
        f"train: {len(sets.split.train_studies)} studies ({len(sets.train)} series), validation: "
        f"{len(sets.split.val_studies)} studies; {inputs.steps} steps/epoch of {batch} windows x {inputs.window} slices on "
        f"{strategy.num_replicas_in_sync} device(s); {sets.label_mode} labels; learning rate "
        f"{config.effective_learning_rate:.2e} (scaling {config.lr_scaling})" + ("; mixed precision" if config.mixed_precision else "")
    )
    plan = inputs.plan_of_epoch(state["epoch"])
    for share in shares:
        mine = plan.take(data_lib.worker_share(len(plan), batch, share.worker, share.num_workers))
        log(f"input share: worker {share.worker}/{share.num_workers} reads {len(mine)} of {len(plan)} windows of epoch "
            f"{state['epoch'] + 1}, plan {plan.digest()}, share {mine.digest()}")
    return inputs


def _start_output_bias(head, sets: _Sets, config: TrainConfig, window: int, log) -> None:
    """Start the output bias at the training series' weighted label prior (``config.output_bias``)."""
    if config.output_bias != "prior":
        return
    bias = output_prior.prior_bias(sets.train, sets.label_mode, config.positive_weight, config.study_pooling, window)
    output_prior.set_output_bias(head, bias)
    log("output bias at the label prior: " + ", ".join(f"{name} {value:+.2f}" for name, value in zip(LABELS, bias)))


def _fit(strategy, run_dir: Path, write_dir: Path, chief: bool, model_config: ModelConfig, config: TrainConfig,
         inputs: loop.Inputs, sets: _Sets, state: dict, log):
    """Build and compile the model, resume or load backbone weights, fit, and load the best epoch's weights."""
    keras.utils.set_random_seed(config.seed)  # the weights' initial values depend on the seed only
    with strategy.scope(), precision_policy(config.mixed_precision):
        encoder, head, model = build_model(model_config, inputs.window)
        _start_output_bias(head, sets, config, inputs.window, log)
        train_model, optimizer, schedule = compile_for_training(
            model, config, inputs.steps, inputs.window, model_config.input_size_px, inputs.label_mode)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    finished = state["stopped"] == "early stopping" or state["epoch"] >= config.epochs
    if state["last"]:
        checkpoint.read(_checkpoint_path(state["last"], write_dir, run_dir)).assert_existing_objects_matched()
        log(f"resuming {run_dir} after epoch {state['epoch']}" + (" (already finished)" if finished else ""))
    elif config.backbone_weights:
        loaded = load_backbone_weights(encoder, model_config, config.backbone_weights)
        log(f"backbone weights: {loaded} layers from {config.backbone_weights}")
    if not finished:
        state["stopped"] = None
        callback = EpochEnd(strategy, write_dir, chief, checkpoint, state, config, schedule, log)
        loop.fit(train_model, inputs, config.epochs, [callback], state["epoch"], 1 if sys.stdout.isatty() else 0)
        if state["stopped"] is None:
            state["stopped"] = "epochs"
    if state["best"]:
        tf.train.Checkpoint(model=model).read(_checkpoint_path(state["best"], write_dir, run_dir)).expect_partial()
    return model


def _export(model, model_config: ModelConfig, window: int, write_dir: Path):
    """Save the weights as ``write_dir``/model.keras from an uncompiled float32 copy outside the
    strategy (no optimizer state, no mirrored variables); returns its ``(encoder, head, model)``."""
    export_encoder, export_head, export = build_model(model_config, window)
    export.set_weights(model.get_weights())
    run_lib.save_model(export, write_dir / run_lib.MODEL_FILE)
    return export_encoder, export_head, export


def training_summary(state: dict, config: TrainConfig, total_seconds: float) -> dict:
    """The report's ``run`` section of a training run: epochs, stopping reason, best epoch, times."""
    return loop.run_summary(state["history"], config.epochs, state["epoch"], state["stopped"], state["best_epoch"],
                            state["best_val_loss"], state["train_seconds"], total_seconds, cpu=True)


def train(
    data: str | Path,
    out: str | Path,
    config: TrainConfig = TrainConfig(),
    model_config: ModelConfig | None = None,
    sequence_config: SequenceConfig = SequenceConfig(),
    test: str | Path | None = None,
    resume: bool = True,
    log=print,
) -> dict:
    """Train on the cache ``data`` into RUN_DIR ``out``; returns the report (``{}`` on non-chief workers).

    Parameters
    ----------
    data : a cache written by ``ich-edge prepare`` (slice labels, or study labels with
        ``config.labels`` "study"/"auto").
    out : RUN_DIR; created if needed, resumed if it holds a run with the same configuration.
    config, model_config, sequence_config : the recipe; ``model_config`` defaults to
        :class:`ModelConfig` at the cache's input size and must match it.
    test : optional cache of held-out studies (another seed) for the report's test section.
    resume : continue an interrupted run in ``out``; False starts over there.
    log : called with one line of progress at a time.

    Steps: check the inputs, split the cache (:func:`_sets`), write config.json and
    split.json (:func:`_begin`), build the input pipelines (:func:`_inputs`), fit
    (:func:`_fit`), save model.keras (:func:`_export`), then finish the run
    (:func:`ich_edge.training.report.finish_run`: thresholds, report, plots).
    """
    strategy = distribute.choose_strategy()  # first: the multi-worker runtime must start before other TF work
    loop.make_reproducible(config)
    t0 = time.monotonic()
    cache = Cache.open(data)
    model_config = _model_config(cache, data, model_config)
    loop.check_batch(strategy, config.batch_size)
    sets = _sets(cache, config, test, log)
    run_dir = Path(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file; pass a folder for the run")
    run_config = run_config_for(data, test, cache, config, model_config, sequence_config, sets, strategy)
    state, chief = _begin(run_dir, run_config, sets.split, resume, strategy)
    inputs = _inputs(strategy, sets, config, sequence_config, state, log)
    with distribute.WriteDir(run_dir, strategy) as write_dir:
        model = _fit(strategy, run_dir, write_dir.path, chief, model_config, config, inputs, sets, state, log)
        encoder, head, export = _export(model, model_config, sequence_config.window_slices, write_dir.path)
        if chief:
            write_json_atomic(run_dir / run_lib.CHECKPOINT_DIR / run_lib.STATE_FILE, state)
    if not chief:
        return {}
    run = run_lib.Run(run_dir, run_config, model_config, sequence_config, cache.preprocess, encoder, head, export, None)
    return report_lib.finish_run(run, sets.val, config, training_summary(state, config, time.monotonic() - t0), log,
                                 test_series=sets.test, history=state["history"], loss_weight=config.positive_weight)
