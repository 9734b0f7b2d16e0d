"""Which slice-encoder designs gain from full-integer int8 on this CPU, and what they cost to train.

The qat-int8 latency goal (<= 0.5x fp32 on XNNPACK) depends on the encoder's layers more
than on the quantization: XNNPACK's int8 kernels pay off on dense 3x3 convolutions with
enough channels (AVX-512 VNNI), much less on depthwise convolutions and 8-48 channel 1x1
layers. This benchmark measures that side by side in one run, on random weights (latency
and file size do not depend on the values):

* the package's encoders (``edge`` at several widths, ``mobilenetv2``), and
* two probe designs that are not package backbones: ``edge-dense@0.5``, the edge blocks
  with a dense 3x3 convolution where the edge has a depthwise one, and ``conv3x3``, a
  VGG-style stack of dense 3x3 convolutions (stem 16, then two convolutions per stage of 24,
  32, 64, 64, 128 channels, the first with stride 2, 2, 2, 1, 2; 1x1 top 256).

Per design: parameters, multiply-accumulates per 128 px slice, fp32 and int8 ``.tflite``
sizes of the encoder alone (no recurrent head) and their ratio, XNNPACK latency of
encoding a 32-slice study (two batches of 16, the runtime's default) in fp32 and int8,
interleaved over rounds, the int8/fp32 ratio, and the TensorFlow training step time of the
whole CNN-LSTM (8 windows x 24 slices, forward and backward) on this CPU.

    python benchmarks/int8_design_space.py --threads 2 --rounds 3

``--blocks``: where the time goes, block by block, for the first design given. The encoder is cut
after the stem, after each inverted-residual block and after the top convolution; each cut is
converted fp32 and int8 (here with int8 input and output, so no QUANTIZE / DEQUANTIZE of the cut
tensor is timed) and its 32-slice study is timed as above, interleaved over rounds. A block's cost
is its cut's time minus the previous cut's (the int8 stem includes nothing the float file lacks but
the input's scale; ``features`` is the last row, the whole encoder with float I/O as shipped).

    python benchmarks/int8_design_space.py --designs edge@0.5 --blocks --threads 2 --rounds 3 [--no-amx]

``--no-amx`` refuses Intel AMX to the process first (``ich_edge.runtime.amx``): on a CPU with AMX,
XNNPACK then runs the int8 kernels of CPUs without it (AVX-512 VNNI).

Writes ``benchmarks/results/int8_design_space_<UTC time>_<host>.json`` (``int8_blocks_...`` with
``--blocks``). Needs TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the ich_edge of this checkout
from ich_edge.precisions import FP32, INT8  # noqa: E402

STUDY_SLICES, ENCODE_BATCH, SIZE_PX = 32, 16, 128
#: ``conv3x3``: (channels, stride of the first of its two 3x3 conv -> BN -> ReLU6) per stage.
CONV3X3_LAYERS = ((24, 2), (32, 2), (64, 2), (64, 1), (128, 2))
DESIGNS = ("edge@0.5", "edge@1.0", "mobilenetv2@0.35", "edge-dense@0.5", "conv3x3")


def _dense_inverted_residual(x, filters: int, strides: int, expansion: int, name: str):
    """The edge's inverted residual block with a dense 3x3 convolution instead of a depthwise one."""
    from ich_edge.training.keras import keras
    from ich_edge.training.model import conv_bn_relu

    in_channels = x.shape[-1]
    y = conv_bn_relu(x, in_channels * expansion, 1, 1, f"{name}_expand")
    y = conv_bn_relu(y, in_channels * expansion, 3, strides, f"{name}_dense")
    y = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(y)
    y = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_project_bn")(y)
    if strides == 1 and in_channels == filters:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


def build_design(name: str):
    """Encoder ``image (B, 128, 128, 3) -> features (B, 64)`` of a design name."""
    from ich_edge.training.keras import keras
    from ich_edge.training.model import EDGE_BLOCKS, ModelConfig, build_encoder, conv_bn_relu, scaled_channels

    if name in ("edge@0.5", "edge@1.0", "mobilenetv2@0.35"):
        backbone, width = name.split("@")
        return build_encoder(ModelConfig(backbone=backbone, width=float(width), input_size_px=SIZE_PX))
    image = keras.Input((SIZE_PX, SIZE_PX, 3), name="image")
    if name == "conv3x3":
        x = conv_bn_relu(image, 16, 3, 2, "stem")
        for i, (filters, strides) in enumerate(CONV3X3_LAYERS):
            x = conv_bn_relu(x, filters, 3, strides, f"conv{i + 1}a")
            x = conv_bn_relu(x, filters, 3, 1, f"conv{i + 1}b")
        x = conv_bn_relu(x, 256, 1, 1, "top")
    else:  # edge-dense@0.5
        x = conv_bn_relu(image, scaled_channels(16, 0.5), 3, 2, "stem")
        for i, (filters, strides, expansion) in enumerate(EDGE_BLOCKS):
            x = _dense_inverted_residual(x, scaled_channels(filters, 0.5), strides, expansion, f"block{i + 1}")
        x = conv_bn_relu(x, scaled_channels(192, 0.5), 1, 1, "top")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    features = keras.layers.Dense(64, activation="relu", name="features")(x)
    return keras.Model(image, features, name=name.replace("@", "_"))


def slice_macs(tflite: bytes) -> int:
    """Multiply-accumulates of one slice, counted from the graph as ``ich-edge bench`` does."""
    from ich_edge.runtime.coverage import signature_macs

    (counted,) = signature_macs(tflite).values()
    return counted["macs"]


def convert(encoder, int8: bool, calibration_slices: int = 16, integer_io: bool = False) -> bytes:
    """fp32, or full-integer int8 with float I/O (int8 I/O with ``integer_io``: no QUANTIZE / DEQUANTIZE
    at the ends), through the package's ``fp32`` / ``int8`` recipes."""
    from converters.recipe import ConvertOptions
    from converters.registry import get_recipe
    from ich_edge.training.keras import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(encoder)
    options = ConvertOptions()
    if int8:
        rng = np.random.default_rng(0)
        options = ConvertOptions(representative_dataset=lambda: (
            ("serving_default", {"image": rng.random((1, SIZE_PX, SIZE_PX, 3), dtype=np.float32)})
            for _ in range(calibration_slices)
        ))
    get_recipe(INT8 if int8 else FP32).configure(converter, options)
    if integer_io:
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def _cut_names(encoder) -> list[str]:
    """Layer names after which the encoder is cut: stem, every block's last layer, top, features."""
    names = [layer.name for layer in encoder.layers]
    cuts = ["stem_relu"]
    for index in range(1, 100):
        block = [n for n in names if n.startswith(f"block{index}_")]
        if not block:
            break
        cuts.append(block[-1])
    return cuts + ["top_relu", "features"]


def block_rows(name: str, threads: int, rounds: int, runs: int) -> list[dict]:
    """fp32 and int8 study time of every cut of design ``name`` and each block's share (see ``--blocks``)."""
    from ich_edge.training.keras import keras

    encoder = build_design(name)
    rows, runners = [], []
    for cut in _cut_names(encoder):
        part = encoder if cut == "features" else keras.Model(encoder.input, encoder.get_layer(cut).output)
        fp32, int8 = convert(part, False), convert(part, True, integer_io=cut != "features")
        rows.append({"cut": cut, "macs_per_slice": slice_macs(fp32), "samples_ms": {FP32: [], INT8: []}})
        runners.append({FP32: make_runner(fp32, threads), INT8: make_runner(int8, threads)})
    for _ in range(rounds):
        for row, runner in zip(rows, runners):
            for precision, run in runner.items():
                run()
                for _ in range(runs):
                    start = time.perf_counter()
                    run()
                    row["samples_ms"][precision].append((time.perf_counter() - start) * 1e3)
    previous = {FP32: 0.0, INT8: 0.0}
    for row in rows:
        row["study_ms_p50"] = {k: float(np.median(v)) for k, v in row.pop("samples_ms").items()}
        row["block_ms"] = {k: row["study_ms_p50"][k] - previous[k] for k in previous}
        previous = row["study_ms_p50"]
    return rows


def make_runner(tflite: bytes, threads: int):
    """A callable that encodes one 32-slice study on XNNPACK, batches of 16."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite, num_threads=threads)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], (ENCODE_BATCH, SIZE_PX, SIZE_PX, 3))
    interpreter.allocate_tensors()
    batch = np.random.default_rng(1).random((ENCODE_BATCH, SIZE_PX, SIZE_PX, 3), dtype=np.float32)
    if detail["dtype"] == np.int8:  # a cut of --blocks: int8 input
        batch = (batch * 255 - 128).astype(np.int8)

    def study() -> None:
        for _ in range(STUDY_SLICES // ENCODE_BATCH):
            interpreter.set_tensor(detail["index"], batch)
            interpreter.invoke()

    return study


def train_step_ms(encoder, steps: int) -> float:
    """Mean wall time of one training step of the CNN-LSTM around ``encoder`` (8 x 24 slices)."""
    from ich_edge.training.keras import keras, tf
    from ich_edge.training.model import ModelConfig, build_cnn_lstm, build_head

    model = build_cnn_lstm(encoder, build_head(ModelConfig(), 24), 24)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    rng = np.random.default_rng(2)
    x = rng.random((8, 24, SIZE_PX, SIZE_PX, 3), dtype=np.float32)
    y = (rng.random((8, 24, 6)) > 0.5).astype(np.float32)
    batch = tf.data.Dataset.from_tensors((x, y))
    model.fit(batch.repeat(2), epochs=1, verbose=0)  # trace and warm up
    start = time.perf_counter()
    model.fit(batch.repeat(steps), epochs=1, verbose=0)
    return (time.perf_counter() - start) / steps * 1e3


def measure(designs, threads: int, rounds: int, runs: int, train_steps: int) -> list[dict]:
    rows, runners = [], {}
    for name in designs:
        encoder = build_design(name)
        fp32, int8 = convert(encoder, False), convert(encoder, True)
        runners[name] = {FP32: make_runner(fp32, threads), INT8: make_runner(int8, threads)}
        rows.append({
            "design": name, "params": int(encoder.count_params()), "macs_per_slice": slice_macs(fp32),
            "fp32_bytes": len(fp32), "int8_bytes": len(int8), "size_ratio": len(int8) / len(fp32),
            "train_step_ms": train_step_ms(encoder, train_steps) if train_steps else None,
            "samples_ms": {FP32: [], INT8: []},
        })
    for _ in range(rounds):  # interleaved: load on the machine hits every design alike
        for row in rows:
            for precision, run in runners[row["design"]].items():
                for _ in range(3):
                    run()
                for _ in range(runs):
                    start = time.perf_counter()
                    run()
                    row["samples_ms"][precision].append((time.perf_counter() - start) * 1e3)
    for row in rows:
        row["study_encode_ms_p50"] = {k: float(np.median(v)) for k, v in row["samples_ms"].items()}
        row["latency_ratio"] = row["study_encode_ms_p50"][INT8] / row["study_encode_ms_p50"][FP32]
        del row["samples_ms"]
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'design':18s} {'params':>8s} {'MMAC/slice':>10s} {'fp32 ms':>8s} {'int8 ms':>8s} "
          f"{'int8/fp32':>9s} {'size int8/fp32':>14s} {'train ms/step':>13s}")
    for row in rows:
        train = f"{row['train_step_ms']:.0f}" if row["train_step_ms"] else "-"
        print(f"{row['design']:18s} {row['params']:8d} {row['macs_per_slice'] / 1e6:10.2f} "
              f"{row['study_encode_ms_p50']['fp32']:8.2f} {row['study_encode_ms_p50']['int8']:8.2f} "
              f"{row['latency_ratio']:9.2f} {row['size_ratio']:14.3f} {train:>13s}")
    print(f"ms: encode a {STUDY_SLICES}-slice study (batches of {ENCODE_BATCH}), XNNPACK, p50; "
          "train: one step of the whole CNN-LSTM, 8 windows x 24 slices, TensorFlow on this CPU")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--designs", default=",".join(DESIGNS), help="comma-separated, from: " + ", ".join(DESIGNS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10, help="timed studies per design, precision and round")
    parser.add_argument("--train-steps", type=int, default=10, help="timed training steps (0: skip)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--blocks", action="store_true", help="time the first design block by block instead")
    parser.add_argument("--no-amx", action="store_true",
                        help="refuse Intel AMX to this process first (ich_edge.runtime.amx): XNNPACK's int8 kernels "
                        "of CPUs without it")
    args = parser.parse_args(argv)
    if args.no_amx:
        from ich_edge.runtime.amx import deny_amx

        deny_amx()
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    unknown = sorted(set(designs) - set(DESIGNS))
    if unknown:
        parser.error(f"unknown design(s) {unknown}; choose from {', '.join(DESIGNS)}")
    from ich_edge.runtime.bench.envelope import envelope, write_results

    if args.blocks:
        return _main_blocks(designs[0], args)
    result = envelope("ich-edge-int8-design-space/1")  # the load average before the measurements
    rows = measure(designs, args.threads, args.rounds, args.runs, args.train_steps)
    result.update({
        "amx_refused": args.no_amx, "threads": args.threads, "rounds": args.rounds, "runs": args.runs,
        "study_slices": STUDY_SLICES, "input_size_px": SIZE_PX,
        "designs": rows,
    })
    print_table(rows)
    for path in write_results(result, "int8_design_space", args.results_dir, args.json):
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _main_blocks(name: str, args) -> int:
    from ich_edge.runtime.bench.envelope import envelope, write_results

    result = envelope("ich-edge-int8-blocks/1")
    rows = block_rows(name, args.threads, args.rounds, args.runs)
    result.update({"design": name, "amx_refused": args.no_amx, "threads": args.threads, "rounds": args.rounds, "runs": args.runs,
                   "study_slices": STUDY_SLICES, "encode_batch": ENCODE_BATCH, "input_size_px": SIZE_PX, "cuts": rows})
    print(f"{'cut':20s} {'MMAC/slice':>10s} {'fp32 ms':>8s} {'int8 ms':>8s} {'block fp32':>10s} {'block int8':>10s}")
    for row in rows:
        print(f"{row['cut']:20s} {row['macs_per_slice'] / 1e6:10.2f} {row['study_ms_p50'][FP32]:8.2f} "
              f"{row['study_ms_p50'][INT8]:8.2f} {row['block_ms'][FP32]:10.2f} {row['block_ms'][INT8]:10.2f}")
    print(f"ms: a {STUDY_SLICES}-slice study through the encoder cut after that layer (batches of {ENCODE_BATCH}), "
          "XNNPACK, p50; block: this cut minus the previous one")
    for path in write_results(result, "int8_blocks", args.results_dir, args.json):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raise SystemExit(main())
