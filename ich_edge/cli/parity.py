"""``ich-edge parity --reference RUN_DIR [--converted-from QAT_DIR] --model FILE... --test CACHE [--out DIR] [--json]``.

Exit codes: 0 PASS, 1 a gate failed (FAIL), 3 could not run, 4 INSUFFICIENT evidence.
``--reference QAT_DIR`` (the old spelling) still works: the QAT_DIR is taken as
``--converted-from`` and the float run it was fine-tuned from as the validated reference.
"""

from __future__ import annotations

from pathlib import Path

import click

from ich_edge.cli.conventions import list_option, result_options
from converters import RECIPES
from ich_edge import LABELS
from ich_edge.training.parity import DEPLOYMENT_GATES, EvidenceRule


def _recipe_defaults(gate: str, percent: bool = False) -> str:
    """``fp16 0.005, dynamic 0.01, ...``: the recipe table's values of one gate, for --help."""
    values = [(name, r.parity.get(gate)) for name, r in RECIPES.items() if r.parity.get(gate) is not None]
    return ", ".join(f"{name} {100 * v:g}%" if percent else f"{name} {v:g}" for name, v in values)


@click.command(name="parity")
@click.option(
    "--reference",
    "reference_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="The validated float RUN_DIR of `ich-edge train`: deployment parity compares every file with it "
    "(and conversion parity the files converted from it).",
)
@click.option(
    "--converted-from", "converted_from", multiple=True, type=click.Path(path_type=Path),
    help="Another Keras folder files were converted from (QAT_DIR of `ich-edge qat` for qat-int8); repeatable.",
)
@click.option(
    "--model", "tflite_paths", required=True, multiple=True, type=click.Path(path_type=Path),
    help="A .tflite written by `ich-edge convert` to check; repeat for several.",
)
@click.option("--test", "--data", "data", required=True, type=click.Path(path_type=Path),
              help="Prepared cache of the held-out studies to judge on.")
@result_options(
    out_help="A folder for report.json, report.md and roc_study.png; a PATH ending in .json gets the JSON report "
    "only. Repeatable (one folder at most).",
    json_help="Print the JSON report on stdout (the summary goes to stderr).",
    force_help="Replace an existing report (a non-empty --out folder or .json file).",
)
@click.option(
    "--study-set", "studies", type=click.Choice(["validation", "all"]), default="validation", show_default=True,
    help="validation: the run's held-out studies (all of a cache that holds none of its training studies).",
)
@click.option("--bootstrap", "replicates", default=1000, show_default=True, type=int, help="Bootstrap replicates (by study); 0 skips intervals.")
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")
@click.option("--threads", default=2, show_default=True, type=int, help="TFLite interpreter threads.")
@click.option("--max-abs-diff", type=float, default=None,
              help=f"Conversion gate: override max |p - p_ref| (all slices and studies) [recipes: {_recipe_defaults('max_abs_diff')}].")
@click.option("--max-auc-drop", type=float, default=None,
              help=f"Conversion gate: override the max study AUC drop, every label [recipes: {_recipe_defaults('max_auc_drop')}].")
@click.option("--min-agreement", type=float, default=None,
              help=f"Conversion gate: override the min study decision agreement, every label, 0..1 [recipes: {_recipe_defaults('min_agreement', True)}].")
@click.option("--deployment-max-auc-drop", type=float, default=None,
              help=f"Deployment gate: max study AUC drop vs the validated model [{DEPLOYMENT_GATES.max_auc_drop:g}].")
@click.option("--deployment-max-auc-drop-ci95", type=float, default=None,
              help=f"Deployment gate: max drop at the far end of the paired 95% CI [{DEPLOYMENT_GATES.max_auc_drop_ci95:g}].")
@click.option("--deployment-min-agreement", type=float, default=None,
              help=f"Deployment gate: min study decision agreement, 0..1 [{DEPLOYMENT_GATES.min_agreement:g}].")
@click.option("--deployment-max-lost-detections", type=int, default=None,
              help=f"Deployment gate: max bleeding studies the validated model flags and the file misses [{DEPLOYMENT_GATES.max_lost_detections}].")
@click.option("--min-studies", type=int, default=EvidenceRule.min_studies, show_default=True,
              help="Held-out studies a verdict needs (fewer: INSUFFICIENT, exit 4).")
@click.option("--min-positive-studies", type=int, default=EvidenceRule.min_positive_studies, show_default=True,
              help="Positive (and negative) studies a gated label needs.")
@click.option("--platform", type=click.Choice(["host", "aarch64"]), default="host", show_default=True,
              help="Where the files run: this machine, or LiteRT's aarch64 kernels emulated with qemu-user "
              "(install with `bash .ci/provision-arm.sh`; seconds per study, the newest provisioned LiteRT).")
@list_option("--gated-labels", default=LABELS, show_default=True,
             help="Labels whose gates decide the verdict (the others are reported only); comma-separated and/or repeated.")
def command(
    reference_dir: Path,
    converted_from: tuple[Path, ...],
    tflite_paths: tuple[Path, ...],
    data: Path,
    outs: tuple[Path, ...],
    as_json: bool,
    force: bool,
    studies: str,
    replicates: int,
    seed: int,
    threads: int,
    max_abs_diff: float | None,
    max_auc_drop: float | None,
    min_agreement: float | None,
    deployment_max_auc_drop: float | None,
    deployment_max_auc_drop_ci95: float | None,
    deployment_min_agreement: float | None,
    deployment_max_lost_detections: int | None,
    min_studies: int,
    min_positive_studies: int,
    gated_labels: tuple[str, ...],
    platform: str,
) -> None:
    """Check that TFLite models say what the Keras models say, on held-out studies.

    Two questions per file, with the same statistics: conversion parity (against the Keras
    model it was converted from: RUN_DIR, or --converted-from QAT_DIR for qat-int8) and
    deployment parity (against the validated float model of RUN_DIR, at its validated
    thresholds; the file decides at the thresholds it carries). Whole studies go through
    the deployment rule. Per label, at slice and study level: AUC with bootstrap 95%
    intervals (by study) and the paired interval of its change, RSNA log loss, max/mean
    probability difference, decision agreement, lost and added positives. Exit codes: 0
    PASS; 1 a gate failed (one FAIL line per label and gate); 3 could not run; 4
    INSUFFICIENT (too few held-out studies, or positive studies of a gated label, to judge).
    """
    from ich_edge.training.parity import ParityConfig, run_parity
    from ich_edge.training.run_dir import RunDir

    deployment = {
        "max_auc_drop": deployment_max_auc_drop,
        "max_auc_drop_ci95": deployment_max_auc_drop_ci95,
        "min_agreement": deployment_min_agreement,
        "max_lost_detections": deployment_max_lost_detections,
    }
    config = ParityConfig(
        replicates=replicates, seed=seed, threads=threads, studies=studies, platform=platform,
        max_abs_diff=max_abs_diff, max_auc_drop=max_auc_drop, min_agreement=min_agreement,
        deployment={k: v for k, v in deployment.items() if v is not None},
        evidence=EvidenceRule(min_studies, min_positive_studies, tuple(dict.fromkeys(gated_labels))),
    )
    folders, json_files = _report_targets(outs, force)
    reference = RunDir.open(reference_dir)  # each folder read once, passed down
    sources = tuple(RunDir.open(folder) for folder in converted_from)
    report, curves = run_parity(reference, tflite_paths, data, config,
                                progress=lambda line: click.echo(line, err=True), converted_from=sources)
    _echo_and_write(report, curves, folders, json_files, as_json)
    _raise_unless_pass(report, min_studies, min_positive_studies)


def _report_targets(outs: tuple[Path, ...], force: bool) -> tuple[list[Path], list[Path]]:
    """``--out`` split into (report folders, .json files), each refused before the work if it exists."""
    from ich_edge.errors import ConfigError
    from ich_edge.fileio import refuse_existing

    folders = [p for p in outs if p.suffix != ".json"]
    json_files = [p for p in outs if p.suffix == ".json"]
    if len(folders) > 1:
        raise ConfigError(f"parity writes one report folder; got --out {' and '.join(map(str, folders))}")
    for path in outs:
        refuse_existing(path, force, "parity --out")  # before the work, not after it
    if not outs:
        click.echo("note: no --out given; the report is printed only", err=True)
    return folders, json_files


def _echo_and_write(report: dict, curves, folders: list[Path], json_files: list[Path], as_json: bool) -> None:
    """Print the report (JSON on stdout with --json, else the summary) and its notes; write every --out."""
    import json

    from ich_edge.training.parity.report import format_summary, write_outputs

    if as_json:
        click.echo(json.dumps(report, indent=2))
    click.echo(format_summary(report), err=as_json)
    written = write_outputs(report, curves, folders[0] if folders else None, None)
    written += [p for path in json_files for p in write_outputs(report, curves, None, path)]
    for path in written:
        click.echo(f"wrote {path}", err=True)
    for note in report["notes"]:
        click.echo(f"note: {note}", err=True)
    for model in report["models"]:
        for line in model["not_evaluable"]:
            click.echo(f"NOT EVALUABLE {line}", err=True)


def _raise_unless_pass(report: dict, min_studies: int, min_positive_studies: int) -> None:
    """One FAIL line per failed gate, then the verdict's error (exit 1 FAIL, 4 INSUFFICIENT)."""
    from ich_edge.errors import GateFailedError, InsufficientEvidenceError

    failures = [line for model in report["models"] for line in model["failures"]]
    for line in failures:
        click.echo(f"FAIL {line}", err=True)
    if report["verdict"] == "FAIL":
        failed = [m["file"] for m in report["models"] if m["verdict"] == "FAIL"]
        raise GateFailedError(f"parity FAIL for {', '.join(failed)}: {len(failures)} gate(s), listed above as FAIL lines")
    if report["verdict"] == "INSUFFICIENT":
        reasons = "; ".join(report["evidence"]["reasons"]) or "a gate needs --bootstrap > 0"
        raise InsufficientEvidenceError(
            f"parity INSUFFICIENT: {reasons}. Pass a larger held-out cache (>= {min_studies} studies, >= "
            f"{min_positive_studies} positive studies per gated label) or narrow --gated-labels"
        )
