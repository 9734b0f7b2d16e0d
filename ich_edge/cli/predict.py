"""``ich-edge predict --model FILE.tflite --dicom PATH [--json] [--png OUT] [--force] [--threads N] [--runtime interpreter|compiled]``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import click

from ich_edge.dicom.privacy import warning_notes
from ich_edge.errors import UnreadableSeriesError
from ich_edge.fileio import refuse_existing
from ich_edge.runtime.predict import RUNTIMES, load_model, predict_path
from ich_edge.runtime.predict_report import format_text, series_problem_lines, to_json


@click.command(name="predict")
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(path_type=Path),
    help="A .tflite written by `ich-edge convert` (it carries its preprocessing and thresholds).",
)
@click.option("--dicom", "path", required=True, type=click.Path(path_type=Path),
              help="One .dcm file, a series folder, or a folder of several series (searched recursively).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per series; problems go to stderr.")
@click.option(
    "--png",
    "png_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write a montage per series: OUT.png for one series, OUT_<k>.png for several "
    "(k = series index); a path without .png is a folder of series_<k>.png. Needs matplotlib.",
)
@click.option("--force", is_flag=True, help="Replace existing --png files.")
@click.option("--threads", default=2, show_default=True, type=int, help="Interpreter threads.")
@click.option(
    "--runtime",
    type=click.Choice(RUNTIMES),
    default="interpreter",
    show_default=True,
    help="interpreter (LiteRT Interpreter with XNNPACK) or compiled (LiteRT CompiledModel, CPU accelerator): "
    "the same file and the same results within 1e-5.",
)
def command(model_path: Path, path: Path, as_json: bool, png_out: Path | None, force: bool, threads: int,
            runtime: str) -> None:
    """Run a TFLite model on the CT series under --dicom PATH (no TensorFlow needed).

    PATH is one .dcm file, a series folder, or a flat folder of several series (the RSNA
    layout), searched recursively. Each series gets one triage line (POSITIVE/NEGATIVE, the
    positive subtypes and the 1-based slice numbers, bottom to top, where the top label
    reaches its slice threshold) and its per-label study probabilities.

    A series that shows too little of the head for a negative (under 100 mm along the slice
    axis, fewer slices than one model window, missing slices, unknown positions) is
    INCOMPLETE instead of NEGATIVE; a POSITIVE keeps its verdict and carries the warning.
    A series the model must not judge is UNREADABLE, with the reason, and the model is not
    run on it: a localizer, a non-axial reformat, several patients in one series, a missing
    or malformed Rescale Intercept/Slope, pixel data longer than declared, HU no head holds.
    Each series with problems gets one line on stderr.

    Exit code 0 when at least one series got a verdict other than UNREADABLE, even if other
    files or series were skipped or UNREADABLE (they are listed as problems); 3 when nothing
    could be judged (every series UNREADABLE: the report is printed, then the error line),
    the model file cannot be used or a --png file exists (add --force); 2 for a bad option.
    """
    model = load_model(model_path, num_threads=threads, runtime=runtime)  # the one read of the file
    if png_out is not None:
        from ich_edge.runtime.montage import require_matplotlib

        require_matplotlib()  # fail before the work, not after it
        if png_out.suffix == ".png":
            refuse_existing(png_out, force, "predict --png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = predict_path(model, path)
    notes = [*result.problems, *warning_notes(caught)]
    for line in series_problem_lines(result):
        click.echo(f"ich-edge: warning: {line}", err=True)
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

        preprocess, points = model.settings.preprocessing, model.settings.points
        paths = png_paths(png_out, len(result.series))
        for out in paths:
            refuse_existing(out, force, "predict --png")
        for prediction, out in zip(result.series, paths):
            if prediction.unreadable:
                continue
            write_montage(
                prediction,
                points,
                out,
                window_names=preprocess.window_names,
                model_name=f"{Path(result.model_path).name} ({result.precision})",
                num_series=len(result.series),
            )
            click.echo(f"wrote {out}", err=as_json)
    if all(prediction.unreadable for prediction in result.series):
        raise UnreadableSeriesError(
            f"{path}: no series could be judged, every one is UNREADABLE (the reasons are above); "
            "fix the export or pass the axial head series"
        )

