"""``ich-edge qat``: quantization-aware fine-tuning of a trained model into QAT_DIR."""

from __future__ import annotations

import click


@click.command("qat")
@click.option("--model", required=True, type=click.Path(file_okay=False, path_type=str), help="Float RUN_DIR of `ich-edge train`.")
@click.option("--data", required=True, type=click.Path(file_okay=False, path_type=str), help="The cache the run was trained on.")
@click.option("--out", required=True, type=click.Path(path_type=str), help="QAT_DIR to write (RUN_DIR layout, quantized: true).")
@click.option("--epochs", type=int, default=None, help="Fine-tuning epochs (default 3).")
@click.option("--learning-rate", type=float, default=None, help="Peak learning rate (default 1/100 of the run's).")
@click.option("--batch-size", type=int, default=None, help="Windows per step (default: the run's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the window order and augmentation.")
@click.option("--distill-weight", type=float, default=None,
              help="Weight of the distillation term (the float model as teacher) beside the label loss; 0: labels only (default 20).")
@click.option("--threshold-rule", type=click.Choice(["agreement", "specificity"]), default="agreement", show_default=True,
              help="QAT thresholds: agree with the float model's decisions (training and validation studies), or as train (fixed specificity).")
@click.option("--force", is_flag=True, help="Overwrite the model of an existing QAT_DIR.")
def command(model, data, out, epochs, learning_rate, batch_size, seed, distill_weight, threshold_rule, force) -> None:
    """Fine-tune a trained CNN-LSTM with fake quantization (slice encoder), for qat-int8.

    The float model is the teacher: the loss adds a distillation term on its per-slice
    probabilities, and the thresholds are chosen to agree with its validation decisions.
    Writes QAT_DIR/model.keras, config.json ("quantized": true), thresholds.json chosen on
    validation for the QAT model, and report.json/.md with the float model's numbers beside.
    Convert it with `ich-edge convert --model QAT_DIR --precision qat-int8 --data CACHE`.
    """
    from ich_edge.training.qat import QatConfig, qat

    given = {"epochs": epochs, "learning_rate": learning_rate, "batch_size": batch_size, "distill_weight": distill_weight}
    config = QatConfig(seed=seed, threshold_rule=threshold_rule, **{k: v for k, v in given.items() if v is not None})
    report = qat(model, data, out, config, force=force, log=click.echo)
    if not report:  # a worker other than the chief (TF_CONFIG): the chief writes QAT_DIR
        return
    study_auc = report["validation"]["model"]["study"]["auc"]
    float_auc = report["float_validation"]["model"]["study"]["auc"]
    rows = ", ".join(
        f"{label} {float_auc[label]:.3f}->{study_auc[label]:.3f}" if study_auc[label] is not None and float_auc[label] is not None
        else f"{label} n/a" for label in study_auc
    )
    click.echo(f"validation study AUC float->QAT: {rows}")
    click.echo(f"QAT_DIR: {out}")
