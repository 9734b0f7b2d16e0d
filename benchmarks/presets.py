"""The demo and mobile presets side by side: convert both in every precision, bench them in one run.

For each preset a tiny synthetic set is made and prepared at the preset's size, a model is
trained briefly (``--epochs 1``: latency does not depend on the weights; 8 calibration
windows) and fine-tuned
with QAT for one epoch, then converted to fp32, fp16, dynamic, int8 and qat-int8 and all
ten files are benched in one ``ich-edge bench`` run (XNNPACK, 2 threads, 32-slice study).
Goal for the mobile preset: qat-int8 study latency at most 0.5x its fp32. ``--profile``
adds ``ich-edge bench --profile`` (where the time goes).

    python benchmarks/presets.py [--work DIR] [--studies 8] [--profile]

Writes ``benchmarks/results/presets_<UTC time>_<host>.json`` (the bench result plus the
preset table) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the ich_edge of this checkout
from ich_edge.precisions import DYNAMIC, FP16, FP32, INT8, QAT_INT8  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PRESETS = {"demo": 128, "mobile": 256}
#: Global batch of the brief training: MobileNetV2 at 256 px on 8 x 24 slices was killed for memory on a 2-core VM.
BATCH = {"demo": "8", "mobile": "1"}
LABELS_CSV = "labels.csv"
PRECISIONS = (FP32, FP16, DYNAMIC, INT8, QAT_INT8)


def ich_edge(*args: str) -> None:
    command = [sys.executable, "-m", "ich_edge", *args]
    print("$ ich-edge " + " ".join(args), flush=True)
    subprocess.run(command, check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--studies", type=int, default=8)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from ich_edge.runtime.bench.envelope import envelope, write_result

    result = envelope("ich-edge-presets/1", machine={})  # the load average before the work; machine: the bench run's
    work = args.work or Path(tempfile.mkdtemp(prefix="ich-edge-presets-"))
    synth = work / "synth"
    if not (synth / LABELS_CSV).exists():
        ich_edge("synth", "--out", str(synth), "--studies", str(args.studies), "--matrix-px", "256")
    files: dict[str, dict[str, str]] = {}
    for preset, size_px in PRESETS.items():
        cache, run, qat_dir, models = (work / f"{preset}_{name}" for name in ("cache", "run", "qat", "tflite"))
        if not (cache / "preprocess.json").exists():
            ich_edge("prepare", "--dicom", str(synth / "dicom"), "--labels-csv", str(synth / LABELS_CSV), "--out", str(cache),
                     "--input-size-px", str(size_px))
        if not (run / "model.keras").exists():
            ich_edge("train", "--data", str(cache), "--out", str(run), "--preset", preset, "--epochs", "1", "--val-fraction", "0.25",
                     "--batch-size", BATCH[preset])
        if not (qat_dir / "model.keras").exists():
            ich_edge("qat", "--model", str(run), "--data", str(cache), "--out", str(qat_dir), "--epochs", "1")
        if not all((models / f"cnn_lstm_{p}.tflite").exists() for p in PRECISIONS):
            ich_edge("convert", "--model", str(run), "--model", str(qat_dir), "--precision", "all", "--data", str(cache), "--calibration-windows", "8",
                     "--out", str(models), "--force")
        files[preset] = {p: str(models / f"cnn_lstm_{p}.tflite") for p in PRECISIONS}
    bench_json = work / "bench.json"
    paths = [path for preset in PRESETS for path in files[preset].values()]
    ich_edge("bench", *[a for p in paths for a in ("--model", p)], "--backend", "xnnpack", "--threads", "2", "--runs",
             str(args.runs), "--out", str(bench_json), "--out", str(work), "--force", *(["--profile"] if args.profile else []))
    bench = json.loads(bench_json.read_text())
    latency = {row["path"]: (row.get("study_latency_ms") or {}).get("p50") for row in bench["rows"]}
    table = []
    for preset in PRESETS:
        fp32 = latency.get(files[preset][FP32])
        for precision, path in files[preset].items():
            ms = latency.get(path)
            size_mb = Path(path).stat().st_size / 1e6
            table.append({"preset": preset, "precision": precision, "size_mb": size_mb, "study_ms_p50": ms,
                          "vs_fp32": None if ms is None or not fp32 else ms / fp32})
    print(f"{'preset':<8} {'precision':<9} {'size MB':>8} {'study ms p50':>12} {'x fp32':>7}")
    for row in table:
        ms = "-" if row["study_ms_p50"] is None else f"{row['study_ms_p50']:.1f}"
        ratio = "-" if row["vs_fp32"] is None else f"{row['vs_fp32']:.2f}"
        print(f"{row['preset']:<8} {row['precision']:<9} {row['size_mb']:>8.2f} {ms:>12} {ratio:>7}")
    result.update(machine=bench["machine"], presets=PRESETS, table=table, bench=bench)
    print(f"wrote {write_result(result, 'presets', args.results_dir, named={work: '<work>'})}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
