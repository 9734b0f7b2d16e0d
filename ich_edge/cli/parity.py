"""``ich-edge parity --reference RUN_DIR|QAT_DIR --tflite FILE... --data CACHE [--json OUT] [--out DIR]``."""

from __future__ import annotations

from pathlib import Path

import click

from converters import RECIPES


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
    help="RUN_DIR of `ich-edge train`, or QAT_DIR of `ich-edge qat` (the Keras model the .tflite came from).",
)
@click.option(
    "--tflite", "tflite_paths", required=True, multiple=True, type=click.Path(path_type=Path),
    help="A .tflite written by `ich-edge convert`; repeat for several.",
)
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Prepared cache holding the held-out studies.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None, help="Write report.json, report.md and roc_study.png here.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also write the JSON report to this file.")
@click.option(
    "--studies", type=click.Choice(["validation", "all"]), default="validation", show_default=True,
    help="validation: the run's held-out studies (all of a cache that holds none of its training studies).",
)
@click.option("--bootstrap", "replicates", default=1000, show_default=True, type=int, help="Bootstrap replicates (by study); 0 skips intervals.")
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")
@click.option("--threads", default=2, show_default=True, type=int, help="TFLite interpreter threads.")
@click.option("--max-abs-diff", type=float, default=None,
              help=f"Override the gate max |p - p_ref| (all slices and studies) [recipes: {_recipe_defaults('max_abs_diff')}].")
@click.option("--max-auc-drop", type=float, default=None,
              help=f"Override the gate max study AUC drop, every label [recipes: {_recipe_defaults('max_auc_drop')}].")
@click.option("--min-agreement", type=float, default=None,
              help=f"Override the gate min study decision agreement, every label, 0..1 [recipes: {_recipe_defaults('min_agreement', True)}].")
def command(
    reference_dir: Path,
    tflite_paths: tuple[Path, ...],
    data: Path,
    out_dir: Path | None,
    json_path: Path | None,
    studies: str,
    replicates: int,
    seed: int,
    threads: int,
    max_abs_diff: float | None,
    max_auc_drop: float | None,
    min_agreement: float | None,
) -> None:
    """Check that TFLite models agree with the Keras reference on held-out studies.

    Whole studies go through the deployment rule in both. Per label, at slice and study
    level: AUC of each model with bootstrap 95% intervals (by study) and the paired
    interval of its change, RSNA log loss, max/mean probability difference, and decision
    agreement at each model's stored thresholds. Exit code 1 when any model fails a gate,
    with one line per failing label.
    """
    from ich_edge.training.parity import ParityConfig, run_parity
    from ich_edge.training.parity_report import format_summary, write_outputs

    config = ParityConfig(
        replicates=replicates,
        seed=seed,
        threads=threads,
        studies=studies,
        max_abs_diff=max_abs_diff,
        max_auc_drop=max_auc_drop,
        min_agreement=min_agreement,
    )
    if out_dir is None and json_path is None:
        click.echo("note: no --out or --json given; the report is printed only", err=True)
    report, curves = run_parity(reference_dir, tflite_paths, data, config, progress=lambda line: click.echo(line, err=True))
    click.echo(format_summary(report))
    for path in write_outputs(report, curves, out_dir, json_path):
        click.echo(f"wrote {path}", err=True)
    for model in report["models"]:
        for warning in model["warnings"]:
            click.echo(f"warning: {warning}", err=True)
    failures = [line for model in report["models"] for line in model["failures"]]
    for line in failures:
        click.echo(f"FAIL {line}", err=True)
    if failures:
        from ich_edge.errors import ModelError

        failed = [m["file"] for m in report["models"] if not m["passed"]]
        raise ModelError(f"parity failed for {', '.join(failed)}: {len(failures)} gate(s), listed above as FAIL lines")
