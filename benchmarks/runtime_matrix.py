"""The golden sample per precision on every runtime an app may ship: architecture x LiteRT version.

For each ``cnn_lstm_<precision>.tflite`` in ``--models`` (default: ``demo_out/tflite/`` of
``make demo``; with ``--build WORK`` a small model is synthesized, trained, QAT-tuned and
converted to every precision there first), ``ich-edge assets`` writes an assets folder
(golden outputs from this Python's LiteRT, XNNPACK), then the reference client runs it on
every runtime of ``ich_edge.runtime.emulation.all_runtimes``: this Python, and what
``.ci/provision-arm.sh`` installed (emulated aarch64 with ai-edge-litert 1.4.0 and 2.x,
x86_64 with 1.4.0). Writes ``benchmarks/results/runtime_matrix_<UTC>_<host>.json``: per
precision x architecture x version the max |diff| of features, slice and study
probabilities against the golden sample, and whether the study decisions agree.

    python benchmarks/runtime_matrix.py [--models DIR | --build WORK] [--results-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(REPO))  # the ich_edge of this checkout
from ich_edge.precisions import NAMES as PRECISIONS  # noqa: E402  every precision of the table, where its file exists


def build_models(work: Path) -> Path:
    """A small trained model in every precision (synth -> prepare -> train -> qat -> convert) under ``work``."""
    from ich_edge.cli import main

    tflite = work / "tflite"
    if (tflite / "cnn_lstm_fp32.tflite").is_file():
        return tflite
    steps = [
        ["synth", "--out", str(work / "synth"), "--studies", "24", "--seed", "1", "--matrix-px", "128", "--slices", "20-28"],
        ["prepare", "--dicom", str(work / "synth" / "dicom"), "--labels-csv", str(work / "synth" / "labels.csv"),
         "--out", str(work / "cache")],
        ["train", "--data", str(work / "cache"), "--out", str(work / "run"), "--epochs", "2", "--width", "0.25"],
        ["qat", "--model", str(work / "run"), "--data", str(work / "cache"), "--out", str(work / "qat"), "--epochs", "1"],
        ["convert", "--model", str(work / "run"), "--model", str(work / "qat"), "--precision", "all",
         "--data", str(work / "cache"), "--out", str(tflite)],
    ]
    for args in steps:
        print("ich-edge " + " ".join(args[:1]), flush=True)
        if main(args + (["--force"] if args[0] in ("synth", "train", "qat", "convert") else [])) != 0:
            raise SystemExit(f"ich-edge {args[0]} failed")
    return tflite


def measure(models: Path, work: Path) -> list[dict]:
    """One row per precision x runtime (reference client on that precision's assets)."""
    from ich_edge.assets.build import AssetsConfig, write_assets
    from ich_edge.assets.sample import SampleConfig
    from ich_edge.assets.runtime_matrix import runtime_matrix
    from ich_edge.precisions import BY_NAME
    from ich_edge.runtime.emulation import all_runtimes

    runtimes = all_runtimes()
    rows = []
    for precision in PRECISIONS:
        path = models / BY_NAME[precision].file_name
        if not path.is_file():
            print(f"{precision}: no {path.name}, skipped", flush=True)
            continue
        assets = work / f"assets_{precision}"
        # The matrix is the measurement here: the assets' spread gate is recorded, not applied.
        write_assets(AssetsConfig(path, assets, force=True, allow_failed_parity=True, sample=SampleConfig(refuse_decision_flips=False)))
        refused = json.loads((assets / "manifest.json").read_text())["sample"]["tolerance"]["on_device"].get("could_flip_a_decision")
        for row in runtime_matrix(assets, runtimes):
            rows.append({"precision": precision, "file": path.name, "assets_would_refuse": refused,
                         **{k: v for k, v in row.items() if k != "name"}})
            diff = row.get("max_abs_diff") or {}
            print(f"{precision:9} {row['arch']:8} {row['litert']:6} {row['status']:3} features {diff.get('features', float('nan')):.2e} "
                  f"slice {diff.get('slice', float('nan')):.2e} study {diff.get('study', float('nan')):.2e} "
                  f"decisions agree {row.get('decisions_agree')}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=REPO / "demo_out" / "tflite", help="folder of cnn_lstm_<precision>.tflite")
    parser.add_argument("--build", type=Path, default=None, help="build a small model of every precision in this folder first")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from ich_edge.runtime.bench.envelope import envelope, shown, write_result
    from ich_edge.runtime.emulation import all_runtimes

    head = envelope("ich-edge-runtime-matrix/1", benchmark="runtime_matrix")  # the load average before the runs

    models = build_models(args.build) if args.build else args.models
    source = ("a small model trained as --build does it (24 synthetic studies, 2 epochs, width 0.25), not the demo's"
              if args.build else "make demo's tflite/" if args.models == REPO / "demo_out" / "tflite" else "the files in --models")
    with tempfile.TemporaryDirectory(prefix="ich_edge_runtime_matrix_") as work:
        rows = measure(models, Path(work))
    result = {
        **head,
        "models": source,
        "runtimes": [r.to_dict() for r in all_runtimes()],
        "golden": "expected.json and features.npy of `ich-edge assets` (this Python's LiteRT, XNNPACK)",
        "client": "ich_edge/assets/reference_client.py, one slice per encode call, 1 thread",
        "rows": rows,
    }
    print(f"wrote {shown(write_result(result, 'runtime_matrix', args.results_dir))}")
    return 0 if rows and all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
