"""``ich-edge prepare``: decode DICOM series once into a training cache."""

from __future__ import annotations

import sys
import time

import click

from ich_edge.ingest.prepare import SeriesFilter, default_workers, parse_shard, prepare, scan, start_over
from ich_edge.transforms import DEFAULT_INPUT_SIZE_PX, PreprocessConfig


class StderrCounter:
    """``progress(done, total)``: ``prepare: 12/340 series`` drawn in place on a terminal, and
    otherwise (a log file, a batch job) one line every ``interval_s`` seconds and at the end.
    """

    def __init__(self, stream=None, what: str = "series", interval_s: float = 10.0, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.what = what
        self.interval_s = interval_s
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.started = time.monotonic()
        self.last = None

    def __call__(self, done: int, total: int) -> None:
        if self.tty:
            end = "\n" if done >= total else ""
            self.stream.write(f"\rprepare: {done}/{total} {self.what}{end}")
            self.stream.flush()
            return
        now = time.monotonic()
        if done < total and self.last is not None and now - self.last < self.interval_s:
            return
        self.last = now
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        left_s = (total - done) / rate if 0 < done < total and rate > 0 else None
        eta = "" if left_s is None else f", about {left_s:.0f} s left" if left_s < 120 else f", about {left_s / 60:.0f} min left"
        self.stream.write(f"prepare: {done}/{total} {self.what} ({elapsed:.0f} s, {rate:.1f}/s{eta})\n")
        self.stream.flush()


@click.command("prepare")
@click.option("--dicom", "dicom_dir", required=True, type=click.Path(path_type=str), help="Folder of DICOM files (a series folder or the flat RSNA layout).")
@click.option("--labels-csv", "labels_csv", type=click.Path(path_type=str), default=None, help="RSNA ID,Label CSV (slice labels) or study-level CSV; omit for unlabelled caches.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=str), help="Cache folder to create or complete.")
@click.option("--input-size-px", "input_size_px", type=int, default=DEFAULT_INPUT_SIZE_PX, show_default=True, help="Side of the model input in pixels.")
@click.option("--workers", type=int, default=None, help=f"Worker processes [default: every usable core, here {default_workers()}].")
@click.option("--shard", "shard_text", default="0/1", show_default=True, help="Prepare only shard i of n (0-based), e.g. 2/8; jobs may share one --out.")
@click.option("--scan-only", is_flag=True, help="Only read the headers into OUT/manifest.json.gz (run once before starting shards).")
@click.option("--min-slices", type=int, default=SeriesFilter.min_slices, show_default=True, help="Leave out series with fewer slices (localizers, fragments).")
@click.option("--patient-key", "patient_key_file", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Key file of the patient pseudonyms (e.g. TRAIN_CACHE/patient.key, so a test cache agrees with it on "
                   "patients) [default: OUT/patient.key, made once at random].")
@click.option("--force", is_flag=True, help="Start over: empty an existing cache in --out first (not with --shard i/n, n > 1).")
def command(dicom_dir: str, labels_csv: str | None, out: str, input_size_px: int, workers: int | None, shard_text: str,
            scan_only: bool, min_slices: int, patient_key_file: str | None, force: bool) -> None:
    """Decode each CT series once (windowed uint8 at the input size) into the cache OUT.

    The headers are read once into OUT/manifest.json.gz and shared by every shard. A
    series already in the cache is skipped, so running the command again resumes a killed
    run. Localizers, series of fewer than --min-slices slices and non-axial series are left
    out. Skipped series and unreadable files are listed in OUT/problems/<i>-of-<n>.json.
    A cache made with other preprocessing is refused (exit 3) unless --force, which empties
    it and starts over; a non-empty folder that is not a cache is refused even with --force.
    Patient IDs are stored only as pseudonyms keyed with OUT/patient.key (random, made once;
    keep it private) or --patient-key.
    """
    shard = parse_shard(shard_text)
    config = PreprocessConfig(input_size_px=input_size_px)
    series_filter = SeriesFilter(min_slices=min_slices)
    workers = default_workers() if workers is None else workers

    def log(line: str) -> None:
        click.echo(f"prepare: {line}", err=True)

    if sys.stderr.isatty():
        log(f"reading DICOM headers under {dicom_dir} (or the manifest in {out}) with {workers} worker(s) ...")
    headers = StderrCounter(what="headers")
    if force:
        start_over(out, shard)
    if scan_only:
        found, headers_read = scan(dicom_dir, out, max(1, workers), headers, log, patient_key_file)
        slices = sum(s.num_slices for s in found.series)
        click.echo(f"scanned {found.num_files} files ({headers_read} headers read): {len(found.series)} CT series, "
                   f"{slices} slices; {len(found.problems)} file(s)/series left out; manifest in {out}")
        return
    summary = prepare(dicom_dir, out, labels_csv=labels_csv, preprocess=config, workers=workers, shard=shard,
                      progress=StderrCounter(), series_filter=series_filter, scan_progress=headers, log=log,
                      patient_key_file=patient_key_file)
    click.echo(summary.line())
