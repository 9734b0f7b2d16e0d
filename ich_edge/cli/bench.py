"""``ich-edge bench FILE... [--threads 1,2,4] [--backend xnnpack,reference,compiled,gpu,gpu+cpu] [--runs N] ...``."""

from __future__ import annotations

from pathlib import Path

import click

from ich_edge.runtime.bench.runner import BACKENDS, BenchConfig, parse_backends, parse_threads


@click.command(name="bench")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--threads", default="2", show_default=True, help="CPU thread counts, comma-separated (e.g. 1,2,4).")
@click.option(
    "--backend",
    "backends",
    default=",".join(BACKENDS),
    show_default=True,
    help="xnnpack (Interpreter, LiteRT's default CPU path), reference (builtin kernels, no delegate), "
    "compiled (LiteRT CompiledModel, CPU accelerator), gpu (CompiledModel, GPU accelerator alone), "
    "gpu+cpu (encode on the GPU, classify on XNNPACK); a GPU row is 'unavailable' with the reason where "
    "it cannot run.",
)
@click.option("--runs", default=20, show_default=True, type=int, help="Timed runs per measurement.")
@click.option("--warmup", default=3, show_default=True, type=int, help="Untimed runs before timing.")
@click.option("--study-slices", default=32, show_default=True, type=int, help="Slices of the timed study.")
@click.option(
    "--rounds", default=1, show_default=True, type=int,
    help="Measure the whole grid this many times, round-robin, samples pooled: on a shared machine, "
    "other load then hits every configuration alike.",
)
@click.option("--data", type=click.Path(path_type=Path), default=None, help="Prepared cache: adds study-level AUC per model.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Write the result JSON to this file.")
@click.option(
    "--results-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write a timestamped result file (bench_<UTC time>_<host>.json) into this folder. "
    "Nothing is written unless --json or --results-dir is given.",
)
@click.option("--profile", is_flag=True, help="Also print where the time goes (stages, delegated nodes, MACs, op kinds).")
def command(
    files: tuple[Path, ...],
    threads: str,
    backends: str,
    runs: int,
    warmup: int,
    study_slices: int,
    rounds: int,
    data: Path | None,
    json_out: Path | None,
    results_dir: Path | None,
    profile: bool,
) -> None:
    """Benchmark .tflite models on CPU and GPU backends; runs without TensorFlow.

    Each model x backend x thread count is measured in a fresh process: init time, first
    inference, latency of one slice and of a whole study (mean, std, p50/p90/p99, outliers
    counted, not dropped), peak memory and the nodes the backend took. The table compares
    variants; speed-up is relative to the fp32 file in the same folder (the same conversion)
    on the same backend and threads.

    Writes a result file only where asked (--json, --results-dir). Exit code 0 when every
    row was measured or is 'unavailable' (no such hardware); 3 when any row failed to
    measure or a model file cannot be used (one line says which); 2 for a bad option.
    """
    from ich_edge.errors import MeasurementError
    from ich_edge.runtime.bench.runner import benchmark, failed_rows
    from ich_edge.runtime.bench.report import format_profile, format_table, write_results

    config = BenchConfig(
        threads=parse_threads(threads),
        backends=parse_backends(backends),
        runs=runs,
        warmup=warmup,
        study_slices=study_slices,
        rounds=rounds,
    )
    result = benchmark(files, config, data=data, progress=lambda line: click.echo(line, err=True))
    click.echo(format_table(result))
    if profile:
        click.echo("")
        click.echo(format_profile(result))
    for path in write_results(result, "bench", results_dir, json_out):
        click.echo(f"wrote {path}", err=True)
    failures = failed_rows(result)
    if failures:
        more = f" (and {len(failures) - 1} more, in the table above)" if len(failures) > 1 else ""
        raise MeasurementError(f"{len(failures)} of {len(result['rows'])} rows failed to measure: {failures[0]}{more}")
