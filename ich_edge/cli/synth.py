"""``ich-edge synth``: write synthetic head-CT phantom studies, and/or a preview montage."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ich_edge.errors import ConfigError
from ich_edge.synth.config import SynthConfig, default_workers, parse_slice_range


@click.command(name="synth")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Folder to write the set into.")
@click.option("--studies", type=int, help="Number of studies (series) to write into --out.")
@click.option("--seed", type=int, default=0, show_default=True, help="Base seed; same seed, same files.")
@click.option("--matrix-px", type=int, default=512, show_default=True, help="Slice size (64 for quick tests).")
@click.option("--slices", "slices", default="20-60", show_default=True, help="Slices per study, MIN-MAX.")
@click.option(
    "--positive-fraction", type=float, default=0.5, show_default=True, help="Share of studies with a bleed."
)
@click.option("--workers", type=int, default=default_workers, show_default="every usable core", help="Processes (the files do not depend on it).")
@click.option(
    "--preview",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG montage (a study per subtype plus a negative, bleeds outlined). Alone, it renders "
    "studies on the fly; with --out DIR of an existing set (no --studies) it uses that set's options.",
)
@click.option("--force", is_flag=True, help="Replace a data set already in --out, and an existing --preview PNG.")
def command(
    out: Path | None,
    studies: int | None,
    seed: int,
    matrix_px: int,
    slices: str,
    positive_fraction: float,
    workers: int,
    preview: Path | None,
    force: bool,
) -> None:
    """Write synthetic head-CT phantom studies in the RSNA 2019 layout.

    OUT/dicom/ID_<hex>.dcm (512x512 int16, RescaleIntercept -1024, 5 mm slices), OUT/labels.csv
    (RSNA ID,Label, six rows per slice), OUT/studies.csv and OUT/synth_config.json. Studies are
    drawn from (seed, study index): the output does not depend on --workers.
    """
    if out is None and preview is None:
        raise ConfigError("nothing to do: pass --out DIR --studies N to write a set, and/or --preview PNG")
    if out is not None and studies is None and preview is None:
        raise ConfigError("--studies N is required with --out (or pass --preview PNG to look at an existing set)")
    slices_min, slices_max = parse_slice_range(slices)
    options = dict(
        seed=seed, matrix_px=matrix_px, slices_min=slices_min, slices_max=slices_max,
        positive_fraction=positive_fraction, workers=workers,
    )
    if out is not None and studies is None:  # preview of an existing set
        from ich_edge.synth.writer import recorded_options

        recorded = recorded_options(out)
        options.update({k: recorded[k] for k in ("seed", "matrix_px", "slices_min", "slices_max", "positive_fraction")})
    config = SynthConfig(studies=studies if studies is not None else 1, **options)

    if out is not None and studies is not None:
        from ich_edge.synth.writer import write_synth_set

        start = time.perf_counter()

        def progress(done: int, total: int) -> None:
            if done == total or done % max(1, total // 20) == 0:
                click.echo(f"  {done}/{total} studies ({time.perf_counter() - start:.0f} s)", err=True)

        records = write_synth_set(config, out, force=force, progress=progress)
        num_slices = sum(len(r.slice_ids) for r in records)
        positives = sum(int(r.study_labels[-1]) for r in records)
        click.echo(
            f"wrote {len(records)} studies ({num_slices} slices, {positives} with a bleed) to {out} "
            f"in {time.perf_counter() - start:.1f} s"
        )
    if preview is not None:
        from ich_edge.fileio import refuse_existing
        from ich_edge.synth.preview import write_preview

        refuse_existing(preview, force, "synth --preview")
        rows = write_preview(config, preview)
        shown = ", ".join(f"{index} ({subtype or 'negative'})" for index, subtype in rows)
        click.echo(f"wrote preview {preview} (studies {shown})")
