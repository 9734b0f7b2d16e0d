"""``ich-edge assets --model FILE.tflite --parity PARITY_DIR --out DIR [--sample-seed S] [--force] [--allow-failed-parity]``."""

from __future__ import annotations

from pathlib import Path

import click

from ich_edge.assets import AssetsConfig, write_assets
from ich_edge.assets.sample import SampleConfig


@click.command(name="assets")
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The .tflite to ship (phones: cnn_lstm_qat-int8.tflite from `ich-edge convert`).",
)
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Assets folder to write.")
@click.option(
    "--sample-seed",
    default=0,
    show_default=True,
    type=int,
    help="First synth seed tried for the sample study: the first positive study from it whose decisions the kernels "
         f"apps run cannot flip is used (up to {SampleConfig.max_samples} studies; the manifest lists those refused).",
)
@click.option("--force", is_flag=True, help="Replace an existing assets folder.")
@click.option(
    "--parity", "parity_report", type=click.Path(path_type=Path), default=None,
    help="The `ich-edge parity` report (report.json or its --out folder) in which this exact file (sha256) passed.",
)
@click.option(
    "--allow-failed-parity", is_flag=True,
    help="Ship a model without a passing parity report; manifest.json and README.md say so.",
)
@click.option(
    "--allow-weak-evidence", is_flag=True,
    help="Ship a parity PASS judged on less evidence than the defaults (--min-studies, --min-positive-studies or "
         "--gated-labels lowered); manifest.json and README.md state the minimums used.",
)
def command(model_path: Path, out_dir: Path, sample_seed: int, force: bool, parity_report: Path | None,
            allow_failed_parity: bool, allow_weak_evidence: bool) -> None:
    """Write the Android/iOS demo app assets for a model.

    OUT receives model.tflite, labels.txt, manifest.json (signatures, quantization,
    preprocessing, sequence rule, thresholds), sample/ (a synthetic positive study as RLE
    DICOM, its exact input tensors and golden outputs), snippets/ (Kotlin and Swift) and a
    README. Check a folder with `python ich_edge/assets/reference_client.py OUT`.

    The model ships only with a parity report in which this exact file passed both
    conversion and deployment parity (--parity); otherwise exit code 1, unless
    --allow-failed-parity. A PASS judged on less evidence than parity's defaults (20
    studies, 5 positive studies per label, every label gated) is refused with exit code 4,
    unless --allow-weak-evidence.
    """
    # The on-device bounds over every runtime provisioned here (emulated aarch64, other LiteRT versions).
    sample_config = SampleConfig(other_runtimes=True)
    result = write_assets(AssetsConfig(model_path=model_path, out_dir=out_dir, sample_seed=sample_seed, force=force,
                                       parity_report=parity_report, allow_failed_parity=allow_failed_parity,
                                       sample=sample_config, allow_weak_evidence=allow_weak_evidence))
    manifest = result.manifest
    sample = manifest["sample"]
    click.echo(f"wrote {result.out_dir}/")
    click.echo(f"  model.tflite   {manifest['precision']}, {result.model_bytes / 1e6:.2f} MB, sha256 {manifest['sha256'][:16]}")
    parity = manifest["parity"]
    click.echo(f"  parity         {'PASS (' + parity['report'] + ')' if parity['passed'] else 'NOT PASSED, shipped with --allow-failed-parity'}")
    click.echo(
        f"  sample/        {sample['num_slices']} slices at {sample['matrix_px']} px, {result.sample_bytes / 1e6:.2f} MB "
        f"({sample['synth_command']})"
    )
    study = ", ".join(f"{label} {p:.3f}" for label, p in sample["expected_study"].items())
    click.echo(f"  expected study probabilities: {study}")
    for note in result.notes:
        click.echo(f"ich-edge: note: {note}", err=True)
