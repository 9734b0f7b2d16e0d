"""``ich-edge convert``: a trained model to TFLite in one or more precisions.

TensorFlow is imported only when the command runs (``--help`` stays quick); the precision
names and their one-line summaries come from the recipe table in :mod:`converters`.
"""

from __future__ import annotations

import click

from ich_edge.cli.conventions import list_option
from converters import ALL, IO_TYPES, RECIPES
from converters.layers import FLOAT_WEIGHTS
from ich_edge.precisions import FP32
from ich_edge.training.projection import PROJECTION_MODES


def _precision_help() -> str:
    rows = "; ".join(f"{r.name}: {r.summary}" for r in RECIPES.values())
    return f"Precisions, comma-separated and/or repeated, or {ALL} (every one the --model folders allow). {rows}."


@click.command("convert")
@click.option("--model", "models", required=True, multiple=True, type=click.Path(file_okay=False, path_type=str),
              help="RUN_DIR of `ich-edge train` and/or QAT_DIR of `ich-edge qat` (give --model twice for both).")
@list_option("--precision", "precisions", required=True, help=_precision_help())
@click.option("--data", type=click.Path(file_okay=False, path_type=str),
              help="Prepared cache the run was trained on; calibration data for int8 and qat-int8.")
@click.option("--out", required=True, type=click.Path(path_type=str), help="Folder for cnn_lstm_<precision>.tflite (+ .json).")
@click.option("--calibration-windows", type=int, default=None,
              help="Windows drawn from the training studies to calibrate int8/qat-int8 (default 64: every "
                   "distinct slice of them calibrates encode, about 1,500 slices).")
@click.option("--io", type=click.Choice(IO_TYPES), default="float", show_default=True,
              help="I/O tensors of int8/qat-int8: float (quantize/dequantize inside the model) or int8 "
                   "(uint8 tensors: the image input takes raw window pixels, scale 1/255, zero point 0).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the calibration draw.")
@list_option("--keep-float", "keep_float", default=("auto",),
             help="int8-mixed and qat-int8: auto (keep layers in float, worst first, until the file passes parity on the "
                  "training cache's studies), fewest (auto, then give back to int8 every layer whose float costs nothing "
                  "measurable there: more integer arithmetic, minutes more), none (all integer) or layer names from the "
                  "per-layer report (e.g. bilstm,stem_conv).")
@click.option("--float-weights", type=click.Choice(FLOAT_WEIGHTS), default=FLOAT_WEIGHTS[0], show_default=True,
              help="int8-mixed and qat-int8: how the float layers' weights are stored: int8 per channel (dequantized "
                   "once when the runtime loads the file; float arithmetic) or float32.")
@click.option("--projection", type=click.Choice(PROJECTION_MODES), default=PROJECTION_MODES[0], show_default=True,
              help="Where encode ends: auto moves the recurrent layer's input projection into encode (once per slice) "
                   "when that narrows the vector per slice (wide encoders such as a flattened feature map); always; never.")
@click.option("--no-layer-report", is_flag=True, help="Skip the per-layer quantization report (<file>.layers.json).")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def command(models, precisions, data, out, calibration_windows, io, seed, keep_float, float_weights, projection,
            no_layer_report, force) -> None:
    """Convert a trained model to TFLite, one file per precision.

    Each file has two signatures (encode: slices -> features, classify: a window of
    features -> probabilities), builtin ops only, an embedded description (labels,
    preprocessing, sequence rule, thresholds, quantization) and a sidecar JSON. Integer
    files also get <file>.layers.json: which layers cost accuracy, worst first.
    """
    from converters.convert import ConvertConfig, convert_runs
    from ich_edge.training.run_dir import RunDir

    fields = {"precisions": precisions, "io": io, "force": force, "seed": seed, "keep_float": tuple(keep_float),
              "layer_report": not no_layer_report, "float_weights": float_weights,
              "projection": projection}
    if calibration_windows is not None:
        fields["calibration_windows"] = calibration_windows
    convert_config = ConvertConfig(**fields)
    run_dirs = [RunDir.open(model) for model in models]  # each folder read once, passed down
    results = convert_runs(run_dirs, data, out, convert_config, log=click.echo)
    reference = next((r["size_bytes"] for r in results if r["precision"] == FP32), None)
    click.echo(f"{'precision':<10} {'size KiB':>9} {'x fp32':>7} {'seconds':>8}  file")
    for r in results:
        ratio = f"{r['size_bytes'] / reference:.2f}" if reference else "-"
        click.echo(f"{r['precision']:<10} {r['size_bytes'] / 1024:>9.1f} {ratio:>7} {r['seconds']:>8.1f}  {r['path']}")
