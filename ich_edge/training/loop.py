"""The training loop shared by ``ich-edge train`` and ``ich-edge qat``.

Both commands run the same steps: seed everything (:func:`make_reproducible`), check the
global batch against the strategy's devices (:func:`check_batch`), build the distributed
training and validation pipelines from cached series (:func:`build_inputs`), compile the
training model with Adam on the cosine schedule (:func:`compile_model`), fit it with a
per-epoch callback (:class:`EpochLog`, :func:`fit`), write the run folder's record
(:func:`open_run_dir`, :func:`write_run_record`) and summarize the run for the report
(:func:`run_summary`). What differs lives in :mod:`ich_edge.training.train` (resume,
checkpoints, early stopping, export) and :mod:`ich_edge.training.qat` (fake quantization,
the teacher, the threshold rules).

The ``config`` these functions take is a :class:`ich_edge.training.train.TrainConfig`
(QAT derives one from the float run's).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ich_edge.errors import ConfigError
from ich_edge.fileio import mark_output, write_json_atomic
from ich_edge.training import data as data_lib
from ich_edge.training import run as run_lib
from ich_edge.training.keras import keras, tf

#: Share of studies held out for validation: ``TrainConfig.val_fraction``'s default and the
#: split QAT makes for an imported run that has no split.json.
VAL_FRACTION = 0.2


def make_reproducible(config) -> None:
    """Seed Python, numpy and TensorFlow; turn on op determinism when ``config.deterministic``."""
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


def check_batch(strategy, batch_size: int) -> None:
    """Refuse a global batch the strategy's devices cannot share evenly."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ConfigError(f"batch_size {batch_size} must be divisible by the {replicas} devices/workers")


def split_series(series: list, split: data_lib.Split) -> tuple[list, list]:
    """``(training series, validation series)`` of ``split``."""
    return data_lib.select_studies(series, split.train_studies), data_lib.select_studies(series, split.val_studies)


def distributed_datasets(strategy, make, global_batch: int, seen: list | None = None):
    """``make(Share)`` per input pipeline, through ``distribute_datasets_from_function``: each
    worker builds only its share (``seen`` collects the shares built in this process)."""

    def dataset_fn(context):
        share = data_lib.Share(context.input_pipeline_id, context.num_input_pipelines,
                               context.get_per_replica_batch_size(global_batch))
        if seen is not None:
            seen.append(share)
        return make(share)

    return strategy.distribute_datasets_from_function(dataset_fn)


@dataclass(frozen=True)
class Inputs:
    """The distributed input pipelines of a run and their sizes.

    ``window`` is the window the model is fitted on (the whole series with study labels);
    ``plan_of_epoch`` gives the global window plan of an epoch.
    """

    train: object
    val: object
    steps: int
    val_steps: int
    window: int
    label_mode: str
    plan_of_epoch: object


def build_inputs(strategy, train_series: list, val_series: list, sequence_config, config, label_mode: str,
                 first_epoch: int = 0, shares: list | None = None) -> Inputs:
    """The training pipeline (from epoch ``first_epoch`` of the seeded window plan; each worker
    reads its share, collected in ``shares``) and the validation pipeline, with ``label_mode`` labels."""
    window, batch, seed, augment = sequence_config.window_slices, config.batch_size, config.seed, config.augment
    plan_of_epoch, steps, fit_window, _ = data_lib.train_plan(train_series, window, batch, seed, augment, label_mode)
    train_ds = distributed_datasets(strategy, lambda share: data_lib.train_dataset(
        train_series, window, batch, seed, augment, first_epoch, label_mode, share)[0], batch, shares)
    val_ds = distributed_datasets(strategy, lambda share: data_lib.eval_dataset(
        val_series, sequence_config, batch, label_mode, share, fit_window)[0], batch)
    val_steps = data_lib.eval_plan(data_lib.trainable(val_series, label_mode), sequence_config, batch,
                                   label_mode, fit_window)[1]
    return Inputs(train_ds, val_ds, steps, val_steps, fit_window, label_mode, plan_of_epoch)


def cosine_schedule(config, steps_per_epoch: int):
    """Cosine decay to 2% of ``config.effective_learning_rate``, after one warm-up epoch from 10%
    of it when the run has at least 4 epochs."""
    total = config.epochs * steps_per_epoch
    warmup = steps_per_epoch if config.epochs >= 4 else 0
    peak = config.effective_learning_rate
    if warmup:
        return keras.optimizers.schedules.CosineDecay(
            peak * 0.1, max(1, total - warmup), alpha=0.02, warmup_target=peak, warmup_steps=warmup
        )
    return keras.optimizers.schedules.CosineDecay(peak, max(1, total), alpha=0.02)


def compile_model(model, config, steps: int, window: int, size_px: int, loss):
    """The training model (:class:`~ich_edge.training.data.AugmentLayer` in front of ``model``),
    compiled with ``loss`` and Adam on :func:`cosine_schedule`; returns ``(train_model, optimizer,
    schedule)``. Call inside ``strategy.scope()``; the global policy decides mixed precision."""
    schedule = cosine_schedule(config, steps)
    optimizer = keras.optimizers.Adam(schedule)
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    train_model = data_lib.training_model(model, window, size_px, config.augment)
    train_model.compile(optimizer=optimizer, loss=loss, weighted_metrics=[])
    return train_model, optimizer, schedule


class EpochLog(keras.callbacks.Callback):
    """Base of the per-epoch callbacks: times every epoch (wall and CPU) and builds its history entry."""

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.cpu_started = time.monotonic(), time.process_time()

    def epoch_entry(self, epoch: int, logs: dict) -> dict:
        """``{"epoch", "loss", "val_loss", "seconds"}`` of the epoch that just ended; its CPU
        seconds are left in ``self.cpu_seconds``."""
        seconds, self.cpu_seconds = time.monotonic() - self.started, time.process_time() - self.cpu_started
        return {"epoch": epoch + 1, "loss": float(logs["loss"]), "val_loss": float(logs["val_loss"]), "seconds": seconds}


def improves(best_loss: float | None, val_loss: float, min_delta: float = 0.0) -> bool:
    """True when ``val_loss`` beats ``best_loss`` (None: nothing yet) by more than ``min_delta``."""
    return best_loss is None or val_loss < best_loss - min_delta


def epoch_line(title: str, entry: dict, details: str = "", best: bool = False) -> str:
    """The progress line of an epoch: ``title: loss, val_loss, seconds`` + ``details`` (+ " (best)")."""
    return (f"{title}: loss {entry['loss']:.4f}, val_loss {entry['val_loss']:.4f}, {entry['seconds']:.1f} s"
            + details + (" (best)" if best else ""))


def fit(train_model, inputs: Inputs, epochs: int, callbacks: list, initial_epoch: int = 0, verbose: int = 0) -> None:
    """Keras ``fit`` of ``train_model`` on ``inputs`` (validated every epoch) from ``initial_epoch`` to ``epochs``."""
    train_model.fit(
        inputs.train,
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=inputs.steps,
        validation_data=inputs.val,
        validation_steps=inputs.val_steps,
        callbacks=callbacks,
        verbose=verbose,
    )


def open_run_dir(run_dir: Path, verb: str) -> None:
    """Create ``run_dir`` and mark it as written by ``ich-edge <verb>``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    mark_output(run_dir, verb)


def write_run_record(run_dir: Path, run_config: dict, split: data_lib.Split, history: list | None = None) -> None:
    """Write config.json and split.json (and history.json when given) into ``run_dir``."""
    write_json_atomic(run_dir / run_lib.CONFIG_FILE, run_config)
    write_json_atomic(run_dir / run_lib.SPLIT_FILE, split.to_dict())
    if history is not None:
        write_json_atomic(run_dir / run_lib.HISTORY_FILE, history)


def run_summary(history: list, epochs_planned: int, epochs_run: int, stopped: str | None, best_epoch: int,
                best_val_loss: float | None, train_seconds: float, total_seconds: float, cpu: bool = False) -> dict:
    """The report's ``run`` section: epochs, stopping reason, best epoch and times (with ``cpu``,
    the mean CPU seconds per epoch of ``history``)."""
    summary = {
        "epochs_planned": epochs_planned,
        "epochs_run": epochs_run,
        "stopped": stopped,
        "best_epoch": best_epoch,
        "best_val_loss": best_val_loss,
        "train_seconds": train_seconds,
        "mean_epoch_seconds": train_seconds / max(1, len(history)),
    }
    if cpu:
        summary["mean_epoch_cpu_seconds"] = float(np.mean([h.get("cpu_seconds", np.nan) for h in history])) if history else None
    summary["total_seconds_this_call"] = total_seconds
    return summary
