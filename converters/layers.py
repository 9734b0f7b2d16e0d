"""Per-layer quantization: which layers of an integer file cost accuracy, and a file with some of them in float.

The integer recipes calibrate the two-signature graph (activation ranges from the cache's
windows) and quantize it. Splitting those two steps (``_experimental_calibrate_only``, then
TFLite's MLIR quantizer with a *deny list* of nodes) gives two things:

* :func:`tensor_errors`: every op output of the integer file against the same tensor of the
  float, calibrated graph on the calibration samples: RMSE divided by the tensor's
  quantization step (the measure TFLite's QuantizationDebugger reports; errors accumulate
  along the graph, so ``added`` is what a layer adds to the error of its inputs).
* :func:`quantize`: the same graph with the nodes of chosen *layer groups* left in float
  (builtin float kernels, a DEQUANTIZE/QUANTIZE pair at each border).

A layer group is a Keras layer: ``encode/<layer>`` from the encoder's tensor names (a fused
conv -> BN -> ReLU is named after its convolution), ``classify/<layer>`` from the name
scope the stateless head gives each head layer (:mod:`ich_edge.training.stateless`), and
``<signature>/output`` for a signature's last op.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ich_edge.runtime import flatbuffer as fb
from ich_edge.runtime.tflite_model import CLASSIFY, ENCODE

#: Op kinds whose output tensor names a layer best (the fused activation's name comes first).
_NAMING_PARTS = ("Conv2D", "depthwise", "MatMul", "Tensordot", "BiasAdd")


def group_of(signature: str, tensor_name: str, is_output: bool) -> str:
    """The layer group of an op from its output tensor's name (see the module docstring)."""
    if is_output:
        return f"{signature}/output"
    parts = tensor_name.split(";")
    named = [p for p in parts if any(key in p for key in _NAMING_PARTS)] or parts
    path = [p for p in named[-1].split("/") if p and not p.startswith("StatefulPartitionedCall")]
    if path and path[0] in ("slice_encoder", "ich_edge_cnn_lstm"):
        path = path[1:]
    layer = path[0] if len(path) > 1 else re.sub(r"_?\d+$", "", path[0]) if path else "op"
    return f"{signature}/{layer}"


@dataclass(frozen=True)
class LayerGroups:
    """Layer groups of a calibrated graph, in graph order: ``nodes[group]`` are the output
    tensor names of its ops (what the quantizer's deny list takes), ``ops[group]`` their kinds."""

    nodes: dict
    ops: dict

    @classmethod
    def of(cls, calibrated: bytes) -> "LayerGroups":
        model = fb.unpack(calibrated)
        names = fb.operator_names(model)
        nodes, ops = {}, {}
        for subgraph in model.subgraphs:
            signature = subgraph.name.decode() if subgraph.name else "main"
            outputs = set(subgraph.outputs)
            for op in subgraph.operators:
                tensors = [subgraph.tensors[i].name.decode() for i in op.outputs]
                group = group_of(signature, tensors[0], bool(outputs & set(op.outputs)))
                nodes.setdefault(group, []).extend(tensors)
                ops.setdefault(group, []).append(names[op.opcodeIndex])
        return cls(nodes, ops)

    def resolve(self, names) -> list[str]:
        """Group names from user input: exact, or a unique suffix (``bidirectional``, ``stem_conv``)."""
        from ich_edge.errors import ConfigError

        chosen = []
        for name in names:
            hits = [g for g in self.nodes if g == name or g.split("/", 1)[1] == name]
            if len(hits) != 1:
                raise ConfigError(f"--keep-float {name!r} matches {len(hits)} layers; choose from: {', '.join(self.nodes)}")
            chosen.append(hits[0])
        return chosen


def calibrate(saved_model_dir, options) -> bytes:
    """The float two-signature graph with the calibrated range of every tensor (not yet quantized)."""
    from converters.graph import run_converter
    from converters.recipe import Recipe, builtin_ops

    def configure(converter, opts) -> None:
        from ich_edge.training.keras import tf

        builtin_ops(converter, integer_only=False)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = opts.representative_dataset
        converter._experimental_calibrate_only = True  # noqa: SLF001 - TFLite's documented debugger path

    recipe = Recipe("calibration", "calibrated float graph", configure, needs_calibration=True, needs_qat=False,
                    io_types=("float", "int8"))
    return run_converter(saved_model_dir, recipe, options)


#: How the weights of float layers are stored: int8 per channel (:mod:`converters.weight_storage`) or float32.
FLOAT_WEIGHTS = ("int8", "float32")


def check_float_weights(value: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of :data:`FLOAT_WEIGHTS`."""
    from ich_edge.errors import ConfigError

    if value not in FLOAT_WEIGHTS:
        raise ConfigError(f"--float-weights must be one of {', '.join(FLOAT_WEIGHTS)}, got {value!r}")


def quantize(calibrated: bytes, float_nodes=(), io: str = "float", float_weights: str = "int8") -> bytes:
    """Quantize a calibrated graph to int8, leaving the ops that output ``float_nodes`` in float.

    Data-movement ops between float ops run in float (:mod:`converters.float_borders`).
    ``float_weights="int8"`` stores the weights of those float ops as int8 per channel, dequantized
    when the runtime prepares the graph (:mod:`converters.weight_storage`); ``"float32"`` keeps them.
    """
    from tensorflow.lite.python.convert import mlir_quantize

    from ich_edge.errors import ConversionError
    from ich_edge.quiet import native_output_silenced
    from ich_edge.training.keras import tf

    io_type = tf.uint8 if io == "int8" else tf.float32
    check_float_weights(float_weights)
    try:
        with native_output_silenced():
            payload = bytes(mlir_quantize(calibrated, denylisted_nodes=list(float_nodes), input_data_type=io_type,
                                          output_data_type=io_type))
    except Exception as err:  # the quantizer raises RuntimeError or ConverterError
        raise ConversionError(f"selective quantization failed: {str(err).strip().splitlines()[0]}") from err
    if float_nodes:
        from converters.float_borders import drop_round_trips

        payload, _ = drop_round_trips(payload)
    if float_weights == "int8" and float_nodes:
        from converters.weight_storage import store_float_weights_int8

        payload, _ = store_float_weights_int8(payload)
    return payload


def _all_tensors(model_bytes: bytes, calibration, limit: int) -> dict:
    """Every op output of ``model_bytes`` (dequantized to float) on ``limit`` calibration samples per signature."""
    from ai_edge_litert.interpreter import Interpreter

    import warnings

    model = fb.unpack(model_bytes)
    with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": it is what this measures
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_content=model_bytes, experimental_preserve_all_tensors=True, num_threads=2)
    samples = {ENCODE: [calibration.images[i:i + 1].astype(np.float32) / 255.0 for i in range(min(limit, calibration.num_slices))],
               CLASSIFY: [calibration.windows[i:i + 1] for i in range(min(limit, calibration.num_windows))]}
    out: dict = {}
    for index, subgraph in enumerate(model.subgraphs):
        signature = subgraph.name.decode()
        runner = interpreter.get_signature_runner(signature)
        ((input_name, details),) = runner.get_input_details().items()
        produced = [t for op in subgraph.operators for t in op.outputs]
        for sample in samples.get(signature, []):
            runner(**{input_name: _as_input(sample, details)})
            for t in produced:
                tensor = subgraph.tensors[t]
                try:
                    value = interpreter.get_tensor(t, index).astype(np.float32)
                except ValueError:  # a tensor the runtime never filled (e.g. an unused SPLIT output)
                    continue
                q = tensor.quantization
                if q is not None and q.scale is not None and len(q.scale) == 1 and tensor.type != 0:
                    value = (value - float(q.zeroPoint[0])) * float(q.scale[0])
                out.setdefault((signature, tensor.name.decode()), []).append(value.ravel())
    return {key: np.concatenate(values) for key, values in out.items()}


def _as_input(sample: np.ndarray, details: dict) -> np.ndarray:
    """``sample`` quantized by the input tensor's own scale and zero point when the file has integer I/O."""
    dtype = np.dtype(details["dtype"])
    if dtype.kind == "f":
        return sample.astype(dtype)
    scale, zero = details["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(sample / scale + zero), info.min, info.max).astype(dtype)


def tensor_errors(calibrated: bytes, quantized: bytes, calibration, limit: int = 32) -> list[dict]:
    """Per op output of ``quantized`` that the float ``calibrated`` graph also has: RMSE in units of
    the tensor's quantization step (``rmse_per_scale``), with its layer group. Float tensors of a
    mixed file have no step: their RMSE is divided by the calibrated range / 255 instead."""
    float_values = _all_tensors(calibrated, calibration, limit)
    int_values = _all_tensors(quantized, calibration, limit)
    model = fb.unpack(quantized)
    rows = []
    for subgraph in model.subgraphs:
        signature = subgraph.name.decode()
        outputs = set(subgraph.outputs)
        for op in subgraph.operators:
            for t in op.outputs:
                key = (signature, subgraph.tensors[t].name.decode())
                if key not in float_values or key not in int_values or float_values[key].shape != int_values[key].shape:
                    continue
                ref, got = float_values[key], int_values[key]
                q = subgraph.tensors[t].quantization
                step = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) == 1 else \
                    max(float(ref.max() - ref.min()), 1e-12) / 255.0
                rmse = float(np.sqrt(np.mean((got - ref) ** 2)))
                rows.append({"signature": signature, "tensor": key[1], "group": group_of(signature, key[1], t in outputs),
                             "rmse": rmse, "step": step, "rmse_per_scale": rmse / step})
    return rows


def group_errors(rows: list[dict]) -> dict:
    """Per layer group: the worst ``rmse_per_scale`` of its tensors and what it adds to the group before it."""
    worst: dict = {}
    for row in rows:
        worst[row["group"]] = max(worst.get(row["group"], 0.0), row["rmse_per_scale"])
    out, before = {}, {}
    for group, value in worst.items():  # graph order within each signature
        signature = group.split("/", 1)[0]
        out[group] = {"rmse_per_scale": value, "added": max(0.0, value - before.get(signature, 0.0))}
        before[signature] = value
    return out
