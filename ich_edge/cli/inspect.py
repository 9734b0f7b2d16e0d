"""``ich-edge inspect --dicom PATH [--json]``: report the CT series under a file or folder."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import click

from ich_edge.dicom import find_series
from ich_edge.dicom.privacy import mask_all, warning_notes
from ich_edge.ingest.inspect import format_table, inspect_scan


@click.command(name="inspect")
@click.option("--dicom", "path", required=True, type=click.Path(path_type=Path),
              help="One .dcm file, a series folder, or a folder of mixed series (searched recursively).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON list with one object per series; skipped files go to stderr.",
)
def command(path: Path, as_json: bool) -> None:
    """Read DICOM series under --dicom PATH and report their geometry and problems.

    PATH is one .dcm file, a series folder, or a flat folder of mixed series (the RSNA
    layout); folders are searched recursively. Nothing is written to disk.
    """
    # pydicom warns about every odd value it meets; gather those into one line per kind
    # instead of letting them interleave with the report (quoted values masked: they could
    # be names; ich_edge.dicom.privacy).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan = find_series(path)
        reports = inspect_scan(scan)
    skipped = mask_all(scan.problems)
    notes = [*skipped, *warning_notes(caught)]
    if as_json:
        click.echo(json.dumps(reports, indent=2))
        for note in notes:
            click.echo(f"ich-edge: skipped: {note}" if note in skipped else f"ich-edge: {note}", err=True)
    else:
        click.echo(format_table(reports, notes))

