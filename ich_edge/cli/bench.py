"""``ich-edge bench --model FILE [--model FILE ...] [--threads 1,2,4] [--backend xnnpack,reference,compiled,gpu,gpu+cpu,xnnpack-no-amx] [--out PATH] [--json]``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ich_edge.cli.conventions import list_option, result_options
from ich_edge.runtime.bench.runner import DEFAULT_BACKENDS, BenchConfig, parse_backends, parse_threads


@click.command(name="bench")
@click.option("--model", "files", required=True, multiple=True, type=click.Path(path_type=Path),
              help="A .tflite to measure; repeat for several.")
@list_option("--threads", item=click.INT, default=(2,), show_default=True,
             help="CPU thread counts: comma-separated and/or repeated (e.g. 1,2,4).")
@list_option(
    "--backend",
    "backends",
    default=DEFAULT_BACKENDS,
    show_default=True,
    help="Comma-separated and/or repeated: xnnpack (Interpreter, LiteRT's default CPU path), reference (builtin "
    "kernels, no delegate), compiled (LiteRT CompiledModel, CPU accelerator), gpu (CompiledModel, GPU accelerator "
    "alone), gpu+cpu (encode on the GPU, classify on XNNPACK), xnnpack-no-amx (XNNPACK with Intel AMX refused "
    "to the process: the int8 kernels of CPUs without AMX; only where the CPU has AMX); a row is 'unavailable' "
    "with the reason where it cannot run.",
)
@click.option("--runs", default=20, show_default=True, type=int, help="Timed runs per measurement.")
@click.option("--warmup", default=3, show_default=True, type=int, help="Untimed runs before timing.")
@click.option("--study-slices", default=32, show_default=True, type=int, help="Slices of the timed study.")
@click.option(
    "--rounds", default=1, show_default=True, type=int,
    help="Measure the whole grid this many times, round-robin, samples pooled: on a shared machine, "
    "other load then hits every configuration alike.",
)
@click.option("--test", "--data", "data", type=click.Path(path_type=Path), default=None,
              help="Prepared cache of held-out studies: adds study-level AUC per model.")
@result_options(
    out_help="Write the result JSON: PATH ending in .json is that file; otherwise a folder that receives "
    "bench_<UTC time>_<host>.json. Repeatable. Nothing is written without --out.",
    json_help="Print the result JSON on stdout instead of the table.",
    force_help="Replace an existing --out .json file.",
)
@click.option("--profile", is_flag=True, help="Also print where the time goes (stages, delegated nodes, MACs, op kinds).")
def command(
    files: tuple[Path, ...],
    threads: tuple[int, ...],
    backends: tuple[str, ...],
    runs: int,
    warmup: int,
    study_slices: int,
    rounds: int,
    data: Path | None,
    outs: tuple[Path, ...],
    as_json: bool,
    force: bool,
    profile: bool,
) -> None:
    """Benchmark .tflite models on CPU and GPU backends; runs without TensorFlow.

    Each model x backend x thread count is measured in a fresh process: init time, first
    inference, latency of one slice and of a whole study (mean, std, p50/p90/p99, outliers
    counted, not dropped), peak memory and the nodes the backend took. The table compares
    variants; speed-up is relative to the fp32 file in the same folder (the same conversion)
    on the same backend and threads.

    Writes a result file only where --out says (an existing .json file only with --force).
    Exit code 0 when every row was measured or is 'unavailable' (no such hardware); 3 when
    any row failed to measure, a model file cannot be used or an output exists; 2 for a bad
    option.
    """
    from ich_edge.errors import MeasurementError
    from ich_edge.runtime.bench.runner import benchmark, failed_rows
    from ich_edge.runtime.bench.report import format_profile, format_table, write_results

    from ich_edge.fileio import refuse_existing

    json_files = [p for p in outs if p.suffix == ".json"]
    folders = [p for p in outs if p.suffix != ".json"]
    for path in json_files:
        refuse_existing(path, force, "bench --out")  # before minutes of measuring
    config = BenchConfig(
        threads=parse_threads(",".join(map(str, threads))),
        backends=parse_backends(",".join(backends)),
        runs=runs,
        warmup=warmup,
        study_slices=study_slices,
        rounds=rounds,
    )
    result = benchmark(files, config, data=data, progress=lambda line: click.echo(line, err=True))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(format_table(result))
    if profile:
        click.echo("", err=as_json)
        click.echo(format_profile(result), err=as_json)
    written = [p for folder in folders for p in write_results(result, "bench", folder)]
    written += [p for path in json_files for p in write_results(result, "bench", None, path)]
    for path in written:
        click.echo(f"wrote {path}", err=True)
    failures = failed_rows(result)
    if failures:
        more = f" (and {len(failures) - 1} more, in the table above)" if len(failures) > 1 else ""
        raise MeasurementError(f"{len(failures)} of {len(result['rows'])} rows failed to measure: {failures[0]}{more}")
