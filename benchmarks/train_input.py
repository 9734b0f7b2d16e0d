"""Training input throughput: the old generator pipeline beside the window-plan pipeline, one run.

For each size (128 and 256 px) and 24-slice windows, batches of 8, with the training
augmentation (flip, rotation 10 deg, shift 5%, intensity jitter 5%), on series stored as
read-only ``np.memmap`` files (as a cache may hold them):

* ``old``: the pipeline before the window plan, copied here: a single-threaded Python
  generator cuts each window and draws its augmentation, then a per-window
  ``ImageProjectiveTransformV3`` in a parallel map; float32 out.
* ``new_input``: ``ich_edge.training.data.train_dataset``: the seeded window plan read by
  index in parallel ``tf.data`` stages, uint8 windows and augmentation draws out. This is
  the CPU's whole share when the training step (and with it the augmentation) runs on an
  accelerator.
* ``new_with_augment_on_cpu``: the same plus the training model's ``AugmentLayer`` applied
  to every batch on the CPU (batched ``ImageProjectiveTransformV3`` over B*T slices), i.e.
  what a CPU-only training step adds for augmentation.

Measured: windows/s (wall) and CPU ms per window (process CPU time / windows), after two
warm-up batches. Writes ``benchmarks/results/train_input_<UTC time>_<host>.json``.

    python benchmarks/train_input.py [--sizes 128,256] [--batches 12] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the ich_edge of this checkout
from ich_edge.ingest.cache import CachedSeries  # noqa: E402
from ich_edge.sequence import epoch_window_starts  # noqa: E402
from ich_edge.training import data as data_lib  # noqa: E402
from ich_edge.training.keras import tf  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
WINDOW, BATCH, NUM_SERIES, SLICES = 24, 8, 12, 40
AUGMENT = data_lib.AugmentConfig(True, 10.0, 0.05, 0.05)


def old_dataset(series_list, window_slices, batch_size, seed, augment):
    """The generator pipeline as it was before the window plan (kept here for the side-by-side)."""
    size_px = int(series_list[0].images.shape[1])
    count = (sum(-(-s.num_slices // window_slices) for s in series_list) // batch_size) * batch_size

    def generate():
        epoch = 0
        while True:
            rng = np.random.default_rng((seed, epoch))
            plan = [(i, start) for i, s in enumerate(series_list) for start in epoch_window_starts(s.num_slices, window_slices, rng)]
            order = rng.permutation(len(plan))
            order = np.resize(order, count) if len(order) < count else order[:count]
            for k in order:
                i, start = plan[k]
                indices = np.arange(start, start + window_slices)
                indices[indices >= series_list[i].num_slices] = -1
                images, labels, weights = data_lib.cut_window(series_list[i], indices)
                yield images, labels, weights, data_lib.augment_params(rng, augment, size_px)
            epoch += 1

    def to_model_input(images, labels, weights, params):
        scaled = tf.cast(images, tf.float32) / 255.0
        return data_lib.apply_augment(scaled, params), labels, weights

    signature = (
        tf.TensorSpec((window_slices, size_px, size_px, 3), tf.uint8),
        tf.TensorSpec((window_slices, 6), tf.float32),
        tf.TensorSpec((window_slices,), tf.float32),
        tf.TensorSpec((data_lib.NUM_AUGMENT_PARAMS,), tf.float32),
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def memmap_series(folder: Path, size_px: int) -> list[CachedSeries]:
    rng = np.random.default_rng(0)
    out = []
    for k in range(NUM_SERIES):
        path = folder / f"s{size_px}_{k}.npy"
        np.save(path, rng.integers(0, 256, (SLICES, size_px, size_px, 3), dtype=np.uint8))
        labels = np.zeros((SLICES, 6), np.int8)
        out.append(CachedSeries(f"1.{k}", f"1.{k}", np.load(path, mmap_mode="r"), labels, labels.max(axis=0), tuple(map(str, range(SLICES)))))
    return out


def measure(batches, count: int, consume=lambda batch: None) -> dict:
    iterator = iter(batches)
    for _ in range(2):
        consume(next(iterator))
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        consume(next(iterator))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    windows = count * BATCH
    return {"windows": windows, "windows_per_s": windows / wall, "cpu_ms_per_window": 1000 * cpu / windows, "wall_s": wall}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="128,256")
    parser.add_argument("--batches", type=int, default=12, help="measured batches of 8 windows per pipeline")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from ich_edge.runtime.bench.envelope import envelope, write_result

    layer = data_lib.AugmentLayer()
    augment_on_cpu = tf.function(lambda window, params: layer([window, params], training=True))
    rows = []
    head = envelope("ich-edge-train-input/1")  # the load average before the measurements
    with tempfile.TemporaryDirectory() as tmp:
        for size_px in (int(s) for s in args.sizes.split(",")):
            series = memmap_series(Path(tmp), size_px)
            new, _ = data_lib.train_dataset(series, WINDOW, BATCH, seed=0, augment=AUGMENT)
            pipelines = {
                "old": (old_dataset(series, WINDOW, BATCH, 0, AUGMENT), lambda b: b[0].numpy()),
                "new_input": (new, lambda b: b[0][0].numpy()),
                "new_with_augment_on_cpu": (new, lambda b: augment_on_cpu(*b[0]).numpy()),
            }
            for name, (dataset, consume) in pipelines.items():
                row = {"pipeline": name, "size_px": size_px, "window_slices": WINDOW, "batch": BATCH,
                       **measure(dataset, args.batches, consume)}
                rows.append(row)
                print(f"{name:<24} {size_px:>4} px  {row['windows_per_s']:7.1f} windows/s  {row['cpu_ms_per_window']:7.1f} CPU ms/window", flush=True)
    result = {
        **head,
        "tensorflow": tf.__version__,
        "augment": {"flip": AUGMENT.flip, "rotation_deg": AUGMENT.rotation_deg, "shift_fraction": AUGMENT.shift_fraction,
                    "intensity_jitter": AUGMENT.intensity_jitter},
        "series": {"count": NUM_SERIES, "slices": SLICES, "storage": "np.memmap (read-only .npy)"},
        "rows": rows,
    }
    print(f"wrote {write_result(result, 'train_input', args.results_dir)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
