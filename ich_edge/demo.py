"""``make demo``: the whole pipeline end to end on the built-in synthetic default.

synth -> prepare -> train -> qat -> convert (all precisions) -> parity -> bench -> assets,
then one summary table. Every step writes under ``--out`` (default ``demo_out/``) except
``assets`` (``android_demo_assets/``) and bench's JSON copy in ``benchmarks/results/``, the
two folders that are committed. Rerunnable: a step whose outputs exist is skipped, so an
interrupted demo resumes where it stopped (delete a step's folder to redo it).

Run as ``python -m ich_edge.demo [--out DIR] [--train-studies N] [--test-studies N]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ich_edge.cli import main as cli_main

PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "qat-int8")
SHIP_PRECISION = "qat-int8"


@dataclass
class Step:
    """One pipeline step: skipped when ``done()`` is true, otherwise ``args`` are run."""

    name: str
    args: list[str]
    done: Callable[[], bool]
    allowed_exit_codes: tuple[int, ...] = (0,)
    seconds: float = field(default=0.0)
    status: str = field(default="pending")


def _steps(out: Path, repo: Path, train_studies: int, test_studies: int, epochs: int | None) -> list[Step]:
    synth_train, synth_test = out / "synth_train", out / "synth_test"
    cache_train, cache_test = out / "cache_train", out / "cache_test"
    run, qat, tflite = out / "run", out / "qat", out / "tflite"
    parity, parity_qat, bench_json = out / "parity", out / "parity_qat", out / "bench.json"
    models = [str(tflite / f"cnn_lstm_{p}.tflite") for p in PRECISIONS]
    # Post-training variants are checked against the float model they were converted from;
    # qat-int8 against the QAT model it was converted from (fine-tuning changed the weights).
    float_models = [arg for m in models[:-1] for arg in ("--tflite", m)]
    # The default training config is the demo's: half-width edge backbone, ~25 s per epoch on 2 cores.
    train_args = ["train", "--data", str(cache_train), "--test", str(cache_test), "--out", str(run)]
    train_args += ["--epochs", str(epochs)] if epochs else []
    return [
        Step("synth (train, seed 1)", ["synth", "--out", str(synth_train), "--studies", str(train_studies), "--seed", "1"],
             lambda: (synth_train / "labels.csv").is_file()),
        Step("synth (test, seed 2)", ["synth", "--out", str(synth_test), "--studies", str(test_studies), "--seed", "2"],
             lambda: (synth_test / "labels.csv").is_file()),
        Step("preview", ["synth", "--out", str(synth_train), "--preview", str(out / "synth_preview.png")],
             lambda: (out / "synth_preview.png").is_file()),
        Step("prepare (train)", ["prepare", "--dicom", str(synth_train / "dicom"), "--labels",
                                 str(synth_train / "labels.csv"), "--out", str(cache_train)],
             lambda: (cache_train / "problems" / "0-of-1.json").is_file()),
        Step("prepare (test)", ["prepare", "--dicom", str(synth_test / "dicom"), "--labels",
                                str(synth_test / "labels.csv"), "--out", str(cache_test)],
             lambda: (cache_test / "problems" / "0-of-1.json").is_file()),
        Step("train", train_args, lambda: (run / "report.json").is_file()),
        Step("qat", ["qat", "--model", str(run), "--data", str(cache_train), "--out", str(qat), "--epochs", "2"],
             lambda: (qat / "report.json").is_file()),
        # Float I/O: XNNPACK does not take the uint8 -> int8 QUANTIZE that --io int8 puts at the
        # image input, and the demo model's study ran 18% slower with it (converters/README.md).
        Step("convert", ["convert", "--model", str(run), "--model", str(qat), "--precision", "all",
                         "--data", str(cache_train), "--out", str(tflite)],
             lambda: all(Path(m).is_file() for m in models)),
        Step("parity (float)", ["parity", "--reference", str(run), *float_models, "--data", str(cache_test),
                                "--out", str(parity)],
             lambda: (parity / "report.json").is_file(), allowed_exit_codes=(0, 1)),
        Step("parity (qat)", ["parity", "--reference", str(qat), "--tflite", models[-1], "--data", str(cache_test),
                              "--out", str(parity_qat)],
             lambda: (parity_qat / "report.json").is_file(), allowed_exit_codes=(0, 1)),
        Step("bench", ["bench", *models, "--threads", "2", "--backend", "xnnpack,reference,gpu,gpu+cpu",
                       "--data", str(cache_test), "--json", str(bench_json)],
             lambda: bench_json.is_file()),
        Step("assets", ["assets", "--model", str(tflite / f"cnn_lstm_{SHIP_PRECISION}.tflite"),
                        "--out", str(repo / "android_demo_assets"), "--force"],
             lambda: (out / "assets.done").is_file()),
    ]


def update_readme(readme: Path, table: str) -> None:
    """Replace the README's results block (between the results markers) with ``table``."""
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n```\n{table}\n```\n{end}{tail}")


def run_demo(out: Path, train_studies: int, test_studies: int, epochs: int | None = None) -> int:
    """Run (or resume) the demo pipeline; returns the process exit code."""
    repo = Path(__file__).resolve().parent.parent
    out.mkdir(parents=True, exist_ok=True)
    steps = _steps(out, repo, train_studies, test_studies, epochs)
    for index, step in enumerate(steps, start=1):
        header = f"[{index}/{len(steps)}] {step.name}"
        if step.done():
            step.status = "reused"
            print(f"{header}: done before, reusing its outputs", flush=True)
            continue
        print(f"{header}: ich-edge {' '.join(step.args)}", flush=True)
        start = time.perf_counter()
        code = cli_main(step.args)
        step.seconds = time.perf_counter() - start
        if code not in step.allowed_exit_codes:
            print(f"demo stopped: step '{step.name}' failed with exit code {code}; fix it and rerun make demo", file=sys.stderr)
            return code
        step.status = "ok" if code == 0 else f"exit {code}"
        if step.name == "assets":
            (out / "assets.done").write_text("ok\n")
        print(f"{header}: {step.status} in {step.seconds:.0f} s", flush=True)
    print()
    print("\n".join(f"  {s.name:<22} {s.status:<8} {s.seconds:7.0f} s" for s in steps))
    print()
    from ich_edge.summary import summary_table

    table = summary_table([out / "parity" / "report.json", out / "parity_qat" / "report.json"], out / "bench.json")
    print(table)
    update_readme(repo / "README.md", table)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ich_edge.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for all demo outputs")
    parser.add_argument("--train-studies", type=int, default=300)
    parser.add_argument("--test-studies", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: ich-edge train's)")
    args = parser.parse_args(argv)
    return run_demo(args.out, args.train_studies, args.test_studies, args.epochs)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
