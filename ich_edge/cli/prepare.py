"""``ich-edge prepare``: decode DICOM series once into a training cache."""

from __future__ import annotations

import sys

import click

from ich_edge.prepare import default_workers, parse_shard, prepare
from ich_edge.transforms import DEFAULT_INPUT_SIZE_PX, PreprocessConfig


class StderrCounter:
    """``progress(done, total)`` drawing ``prepare: 12/340 series`` in place on a terminal."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr

    def __call__(self, done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        self.stream.write(f"\rprepare: {done}/{total} series{end}")
        self.stream.flush()


@click.command("prepare")
@click.option("--dicom", "dicom_dir", required=True, type=click.Path(path_type=str), help="Folder of DICOM files (a series folder or the flat RSNA layout).")
@click.option("--labels", "labels_csv", type=click.Path(path_type=str), default=None, help="RSNA ID,Label CSV (slice labels) or study-level CSV; omit for unlabelled caches.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=str), help="Cache folder to create or complete.")
@click.option("--input-size", "input_size_px", type=int, default=DEFAULT_INPUT_SIZE_PX, show_default=True, help="Side of the model input in pixels.")
@click.option("--workers", type=int, default=default_workers(), show_default=True, help="Worker processes.")
@click.option("--shard", "shard_text", default="0/1", show_default=True, help="Prepare only shard i of n (0-based), e.g. 2/8; jobs may share one --out.")
def command(dicom_dir: str, labels_csv: str | None, out: str, input_size_px: int, workers: int, shard_text: str) -> None:
    """Decode each CT series once (windowed uint8 at the input size) into the cache OUT.

    A series already in the cache is skipped, so running the command again resumes a killed
    run. Skipped series and unreadable files are listed in OUT/problems/<i>-of-<n>.json.
    """
    shard = parse_shard(shard_text)
    config = PreprocessConfig(input_size_px=input_size_px)
    progress = None
    if sys.stderr.isatty():
        click.echo(f"prepare: reading DICOM headers under {dicom_dir} ...", err=True)
        progress = StderrCounter()
    summary = prepare(dicom_dir, out, labels_csv=labels_csv, preprocess=config, workers=workers, shard=shard, progress=progress)
    click.echo(summary.line())
