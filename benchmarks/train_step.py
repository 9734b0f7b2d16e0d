"""Training speed of the demo model with and without TensorFlow's oneDNN kernels, on this CPU.

TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512 VNNI or newer;
``ich_edge.training.keras`` turns them on everywhere (``TF_ENABLE_ONEDNN_OPTS=1`` unless
the environment sets it). This measures what that is worth where it matters, an AVX2-only CPU:
the demo's training step (``ich-edge train``'s defaults: the edge backbone at 128 px, width
0.5, a bidirectional LSTM over 24-slice windows, batch 8, augmentation on, op determinism on),
``--steps`` steps after 2 warm-up steps, in a fresh process per setting (the variable is
read when TensorFlow loads), the two settings alternating over ``--rounds`` rounds. Each
process also reports its loss and the sum of the first weight after the steps: the same
setting must give the same numbers bit for bit in every round (determinism).

    python benchmarks/train_step.py [--rounds 3] [--steps 5]

Writes ``benchmarks/results/train_step_<UTC time>_<host>.json``: seconds and CPU seconds
per step per round, medians, the ratio off/on, and whether each setting was deterministic.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the ich_edge of this checkout
SETTINGS = {"oneDNN on": "1", "oneDNN off": "0"}


def measure(steps: int) -> dict:
    """In this process: ``steps`` timed training steps of the demo model on a fixed random batch."""
    import numpy as np

    from ich_edge.training import data as data_lib
    from ich_edge.training.keras import keras, tf
    from ich_edge.training.model import ModelConfig, build_model
    from ich_edge.training.train import TrainConfig, training_loss

    config = TrainConfig()
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    model_config, window = ModelConfig(), 24
    _, _, model = build_model(model_config, window)
    size = model_config.input_size_px
    train_model = data_lib.training_model(model, window, size, config.augment)
    train_model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=training_loss(config.positive_weight))
    rng = np.random.default_rng(0)
    batch = [rng.integers(0, 256, (config.batch_size, window, size, size, 3), dtype=np.uint8),
             rng.random((config.batch_size, data_lib.NUM_AUGMENT_PARAMS)).astype(np.float32)]
    labels = (rng.random((config.batch_size, window, 6)) < 0.1).astype(np.float32)
    for _ in range(2):
        train_model.train_on_batch(batch, labels)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        loss = train_model.train_on_batch(batch, labels)
    return {"s_per_step": (time.perf_counter() - wall) / steps, "cpu_s_per_step": (time.process_time() - cpu) / steps,
            "loss": repr(float(loss)), "weight_sum": repr(float(train_model.trainable_weights[0].numpy().sum())),
            "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}


def run_setting(value: str, steps: int) -> dict:
    """One fresh process with ``TF_ENABLE_ONEDNN_OPTS=value``; its :func:`measure` result."""
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=value)
    done = subprocess.run([sys.executable, __file__, "--worker", "--steps", str(steps)], env=env, cwd=REPO,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.steps)))
        return 0
    from ich_edge.runtime.bench.envelope import envelope, shown, write_result

    result = envelope("ich-edge-train-step/1", rounds=args.rounds, steps=args.steps,
                      what="demo model training step (batch 8 windows of 24 slices at 128 px, augmentation, op determinism)")
    runs = {name: [] for name in SETTINGS}
    for index in range(args.rounds):
        for name in SETTINGS if index % 2 == 0 else list(SETTINGS)[::-1]:
            runs[name].append(run_setting(SETTINGS[name], args.steps))
            print(f"round {index + 1} {name}: {runs[name][-1]['s_per_step']:.2f} s per step", flush=True)
    medians = {name: statistics.median(r["s_per_step"] for r in rows) for name, rows in runs.items()}
    result.update(
        runs=runs,
        median_s_per_step=medians,
        ratio_off_over_on=medians["oneDNN off"] / medians["oneDNN on"],
        deterministic={name: len({(r["loss"], r["weight_sum"]) for r in rows}) == 1 for name, rows in runs.items()},
    )
    path = write_result(result, "train_step", args.results_dir)
    print(f"oneDNN off / on: {result['ratio_off_over_on']:.2f}x per training step; deterministic {result['deterministic']}")
    print(f"wrote {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
