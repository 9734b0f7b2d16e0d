"""``ich-edge predict --model FILE.tflite PATH [--json] [--png OUT] [--threads N] [--runtime interpreter|compiled]``."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import click

from ich_edge.runtime.predict import RUNTIMES, format_text, load_model, model_settings, predict_path, to_json


@click.command(name="predict")
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(path_type=Path),
    help="A .tflite written by `ich-edge convert` (it carries its preprocessing and thresholds).",
)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per series; problems go to stderr.")
@click.option(
    "--png",
    "png_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write a montage per series: OUT.png for one series, OUT_<k>.png for several "
    "(k = series index); a path without .png is a folder of series_<k>.png. Needs matplotlib.",
)
@click.option("--threads", default=2, show_default=True, type=int, help="Interpreter threads.")
@click.option(
    "--runtime",
    type=click.Choice(RUNTIMES),
    default="interpreter",
    show_default=True,
    help="interpreter (LiteRT Interpreter with XNNPACK) or compiled (LiteRT CompiledModel, CPU accelerator): "
    "the same file and the same results within 1e-5.",
)
def command(model_path: Path, path: Path, as_json: bool, png_out: Path | None, threads: int, runtime: str) -> None:
    """Run a TFLite model on the CT series under PATH (no TensorFlow needed).

    PATH is one .dcm file, a series folder, or a flat folder of several series (the RSNA
    layout), searched recursively. Each series gets one triage line (POSITIVE/NEGATIVE, the
    positive subtypes and the 1-based slice numbers, bottom to top, where the top label
    reaches its slice threshold) and its per-label study probabilities.

    Exit code 0 when at least one series was predicted, even if other files or series were
    skipped (they are listed as problems); non-zero when nothing could be predicted.
    """
    model = load_model(model_path, num_threads=threads, runtime=runtime)
    if png_out is not None:
        from ich_edge.runtime.montage import require_matplotlib

        require_matplotlib()  # fail before the work, not after it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = predict_path(model, path)
    notes = [*result.problems, *_warning_notes(caught)]
    if as_json:
        click.echo(json.dumps(to_json(result), indent=2))
        for note in notes:
            click.echo(f"ich-edge: problem: {note}", err=True)
    else:
        click.echo(format_text(result))
        if notes:
            click.echo("\nproblems:")
            for note in notes:
                click.echo(f"  {note}")
    if png_out is not None:
        from ich_edge.runtime.montage import png_paths, write_montage

        preprocess, points = model_settings(model.description, model.path)
        paths = png_paths(png_out, len(result.series))
        for prediction, out in zip(result.series, paths):
            write_montage(
                prediction,
                points,
                out,
                window_names=preprocess.window_names,
                model_name=f"{Path(result.model_path).name} ({result.precision})",
                num_series=len(result.series),
            )
            click.echo(f"wrote {out}", err=as_json)


def _warning_notes(caught: list[warnings.WarningMessage]) -> list[str]:
    counts = Counter(str(item.message).splitlines()[0] for item in caught if str(item.message).strip())
    return [f"pydicom warned {count}x: {message}" for message, count in counts.items()]
