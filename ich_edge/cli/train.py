"""``ich-edge train``: train the CNN-LSTM on a prepared cache into RUN_DIR.

TensorFlow is imported only when the command runs, so ``ich-edge train --help`` is quick.
Options left out take the defaults of ``TrainConfig``, ``ModelConfig`` and ``SequenceConfig``.
"""

from __future__ import annotations

import click


def _given(**options) -> dict:
    return {k: v for k, v in options.items() if v is not None}


@click.command("train")
@click.option("--data", "data", required=True, type=click.Path(file_okay=False, path_type=str), help="Prepared cache (ich-edge prepare --out).")
@click.option("--out", "out", required=True, type=click.Path(path_type=str), help="RUN_DIR to write (config, checkpoints, model.keras, report).")
@click.option("--test", "test", type=click.Path(file_okay=False, path_type=str), help="Cache of held-out studies for the report's test section.")
@click.option("--epochs", type=int, help="Maximum epochs (default 24).")
@click.option("--batch-size", type=int, help="Windows per step, global across devices (default 8).")
@click.option("--learning-rate", type=float, help="Peak Adam learning rate (default 3e-3, cosine decay).")
@click.option("--backbone", type=str, help="Slice encoder: edge (default) or mobilenetv2.")
@click.option("--width", type=float, help="Channel multiplier of the backbone (default 0.5).")
@click.option("--feature-dim", type=int, help="Features per slice entering the recurrent head.")
@click.option("--rnn", type=str, help="Recurrent head: lstm (default) or gru.")
@click.option("--rnn-units", type=int, help="Units per direction of the recurrent head.")
@click.option("--window-slices", type=int, help="Slices per window (default 24).")
@click.option("--stride-slices", type=int, help="Stride between windows at evaluation (default 12).")
@click.option("--val-fraction", type=float, help="Share of studies held out for validation (default 0.2).")
@click.option("--seed", type=int, help="Seed of the split, windows, augmentation and weights (default 0).")
@click.option("--patience", type=int, help="Epochs without a better validation loss before stopping (default 6).")
@click.option("--min-epochs", type=int, help="Epochs that always run before early stopping may stop (default: half of --epochs).")
@click.option("--positive-weight", type=float, help="Weight of positive labels in the loss (default 3; 1: the plain RSNA loss).")
@click.option("--rotation-deg", type=float, help="Augmentation: maximum rotation in degrees (default 10).")
@click.option("--max-minutes", type=float, help="Stop after the epoch that would overrun this training time.")
@click.option("--preset", type=click.Choice(["demo", "mobile"]), help="Architecture preset: demo (default: edge 0.5 at 128 px) or mobile (MobileNetV2 1.0 at 256 px, for real data); other options override it.")
@click.option("--backbone-weights", type=click.Path(dir_okay=False, path_type=str), help="Local weights file of the backbone (e.g. keras.applications MobileNetV2 ImageNet no_top .h5), loaded before the first epoch.")
@click.option("--labels", "labels", type=click.Choice(["auto", "slice", "study"]), help="Train on slice labels, or on study labels only (loss on the max over slices); default auto.")
@click.option("--study-pooling", type=click.Choice(["max", "noisy-or"]), help="Study-label loss on the max over slices (default) or their noisy-or.")
@click.option("--output-bias", type=click.Choice(["prior", "zero"]), help="Start the output bias at each label's prior in the training set (default; learning starts at once) or at zero (every label at 0.5).")
@click.option("--lr-scaling", type=click.Choice(["none", "linear"]), help="linear: --learning-rate is for a global batch of 8 and scales with --batch-size (default none).")
@click.option("--mixed-precision/--no-mixed-precision", default=None, help="mixed_float16 training (GPUs); float32 output, loss and model.keras.")
@click.option("--deterministic/--nondeterministic", default=None, help="TensorFlow op determinism: same seed, data and machine give the same weights (default on).")
@click.option("--force", is_flag=True, help="Start over in an existing RUN_DIR. Without it a run in --out with the same "
              "configuration continues (resume) and one with another configuration is refused.")
def command(data, out, test, epochs, batch_size, learning_rate, backbone, width, feature_dim, rnn, rnn_units,
            window_slices, stride_slices, val_fraction, seed, patience, min_epochs, positive_weight, rotation_deg, max_minutes,
            preset, backbone_weights, labels, study_pooling, output_bias, lr_scaling, mixed_precision, deterministic, force) -> None:
    """Train the CNN-LSTM on a prepared cache.

    Splits the cache by study (seeded), trains on windows of consecutive slices with CT
    augmentation, checkpoints every epoch, stops early on the validation loss, then writes
    RUN_DIR/model.keras, thresholds.json (90% specificity on validation), report.json/.md
    and ROC/loss plots. Multi-worker: run the same command on each machine with TF_CONFIG.
    """
    from ich_edge.ingest.cache import Cache
    from ich_edge.sequence import SequenceConfig
    from ich_edge.errors import ConfigError
    from ich_edge.training.model import PRESETS, ModelConfig
    from ich_edge.training.train import TrainConfig, train

    config = TrainConfig(**_given(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                  val_fraction=val_fraction, seed=seed, patience=patience, min_epochs=min_epochs,
                                  max_minutes=max_minutes,
                                  positive_weight=positive_weight, rotation_deg=rotation_deg,
                                  backbone_weights=backbone_weights, labels=labels, study_pooling=study_pooling, output_bias=output_bias, lr_scaling=lr_scaling,
                                  mixed_precision=mixed_precision, deterministic=deterministic))
    sequence_config = SequenceConfig(**_given(window_slices=window_slices, stride_slices=stride_slices))
    if window_slices is not None and stride_slices is None:
        sequence_config = SequenceConfig.half_overlap(window_slices)
    model_fields = {**PRESETS[preset or "demo"],
                    **_given(backbone=backbone, width=width, feature_dim=feature_dim, rnn=rnn, rnn_units=rnn_units)}
    cache_px = Cache.open(data).preprocess.input_size_px
    if model_fields.setdefault("input_size_px", cache_px) != cache_px:
        raise ConfigError(f"--preset {preset} takes {model_fields['input_size_px']} px slices but {data} holds {cache_px} px; "
                          f"prepare the cache with --input-size-px {model_fields['input_size_px']}")
    model_config = ModelConfig(**model_fields)
    report = train(data, out, config, model_config, sequence_config, test=test, resume=not force, log=click.echo)
    if report:
        target = report["targets"]
        aucs = ", ".join(f"{k} {v['auc']:.3f}" if v["auc"] is not None else f"{k} n/a" for k, v in target["labels"].items())
        click.echo(f"study AUC on {target['set']}: {aucs}")
        click.echo(f"run folder: {out}")
