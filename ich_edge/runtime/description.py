"""What an ich-edge ``.tflite`` says about itself, read without TensorFlow.

Every model written by ``ich-edge convert`` carries a *description*: UTF-8 JSON stored in
the flatbuffer's ``metadata`` map under :data:`DESCRIPTION_KEY` (and copied to the sidecar
``<model>.tflite.json``). It holds what an app needs to feed the model correctly: labels,
signatures with their quantization, the preprocessing and sequence rules, thresholds and
where the weights came from. :func:`op_summary` lists the operators of each signature and
how they compute (integer, hybrid or float), for ``convert``, ``bench`` and the tests.

Damaged and foreign files are refused by :func:`ich_edge.runtime.model_check.check_model_file`
before the interpreter sees them.

Only numpy, flatbuffers and ``ai_edge_litert.schema_py_generated`` are used, read through
:mod:`ich_edge.runtime.flatbuffer`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from ich_edge.errors import ModelError
from ich_edge.runtime import flatbuffer as fb
from ich_edge.runtime.flatbuffer import DESCRIPTION_KEY, parse_description  # noqa: F401 - re-exported
from ich_edge.runtime.model_check import check_model

FORMAT = "ich-edge-model/1"
SIDECAR_SUFFIX = ".json"
#: Buffers are 16-byte aligned in converter output; keep them so after re-packing.
_BUFFER_ALIGNMENT = 16
_INTEGER_TYPES = ("int8", "uint8", "int16")


def sidecar_path(model_path: str | Path) -> Path:
    """``<model>.tflite.json``: the description next to the model, for people and scripts."""
    return Path(f"{model_path}{SIDECAR_SUFFIX}")


def _aligned_buffer(schema, data):
    """A ``BufferT`` whose bytes are packed on a 16-byte boundary (as the converter does)."""

    class AlignedBuffer(schema.BufferT):
        def Pack(self, builder):  # noqa: N802 - flatbuffers naming
            payload = None
            if self.data is not None:
                raw = np.asarray(self.data, dtype=np.uint8).tobytes()
                builder.StartVector(1, len(raw), _BUFFER_ALIGNMENT)
                builder.head -= len(raw)
                builder.Bytes[builder.head : builder.head + len(raw)] = raw
                builder.vectorNumElems = len(raw)
                payload = builder.EndVector()
            schema.BufferStart(builder)
            if payload is not None:
                schema.BufferAddData(builder, payload)
            return schema.BufferEnd(builder)

    buffer = AlignedBuffer()
    buffer.data = data
    return buffer


class _SharingBuilder:
    """Factory of a ``flatbuffers.Builder`` that writes each distinct numeric vector once.

    Converter output repeats many vectors: every per-channel int8 weight and int32 bias has
    its own all-zero int64 ``zero_point`` array (8 bytes per channel), and shapes recur.
    Tables may point at the same vector (the format allows it; flatc's shared strings do the
    same), so identical vectors are packed once. The tensors and their values are unchanged.
    """

    @staticmethod
    def create(initial_size: int):
        import flatbuffers

        class Builder(flatbuffers.Builder):
            def __init__(self, size):
                super().__init__(size)
                self._shared = {}

            def CreateNumpyVector(self, x):  # noqa: N802 - flatbuffers naming
                key = (x.dtype.str, x.shape, x.tobytes())
                if key not in self._shared:
                    self._shared[key] = super().CreateNumpyVector(x)
                return self._shared[key]

        return Builder(initial_size)


def _short_name(raw) -> str:
    """``a/quant_conv/Conv2D;a/quant_bn/...`` -> ``a/conv/Conv2D``.

    Keeps the first of the fused ops' names (joined by ``;``) and drops the ``quant_`` prefix
    of TFMOT wrapper layers, so a QAT file names its tensors like the float-trained one.
    """
    first = fb.name(raw).split(";", 1)[0]
    return "/".join(part.removeprefix("quant_") for part in first.split("/"))


def _share_empty_buffer(model) -> None:
    """Point every tensor without data at buffer 0 (the schema's empty sentinel) and drop the rest.

    The converter gives each activation tensor an empty buffer of its own; an unrolled
    recurrent head has hundreds of them. Metadata buffers (the description) are kept and
    renumbered with the others; a buffer nothing uses any more (the description that
    :func:`embed_description` replaced) is dropped, so embedding again does not grow the file.
    """
    buffers = model.buffers or []

    def empty(index: int) -> bool:
        return buffers[index].data is None or len(buffers[index].data) == 0

    if not buffers or not empty(0):
        return  # not converter output: leave the buffers as they are
    used = {tensor.buffer for subgraph in model.subgraphs for tensor in subgraph.tensors or []}
    # Only buffers a tensor or a kept metadata entry uses: a replaced description's old buffer goes.
    keep = [0] + [i for i in range(1, len(buffers)) if not empty(i) and i in used]
    metadata_buffers = {m.buffer for m in model.metadata or []}
    keep = sorted(set(keep) | metadata_buffers)
    new_index = {old: new for new, old in enumerate(keep)}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.buffer = 0 if empty(tensor.buffer) and tensor.buffer not in metadata_buffers else new_index[tensor.buffer]
    for entry in model.metadata or []:
        entry.buffer = new_index[entry.buffer]
    model.buffers = [buffers[i] for i in keep]


def embed_description(tflite_bytes: bytes, description: dict, compact: bool = True) -> bytes:
    """Return ``tflite_bytes`` with ``description`` stored under :data:`DESCRIPTION_KEY`.

    Parameters
    ----------
    tflite_bytes : a TFLite flatbuffer as written by the converter.
    description : JSON-serializable dict (replaces an existing description).
    compact : also pack identical vectors once and shorten tensor names (see
        :func:`_short_name`); lossless for inference, and ~15% of a small per-channel int8
        model is all-zero int64 zero points otherwise.

    Returns
    -------
    bytes
        The re-packed flatbuffer; operators, tensor values, quantization and signatures are
        unchanged. Beside the description it stores their
        :func:`~ich_edge.runtime.flatbuffer.weights_digest` (metadata
        :data:`~ich_edge.runtime.flatbuffer.WEIGHTS_DIGEST_KEY`), which
        :func:`~ich_edge.runtime.model_check.check_model` compares on every open.
    """
    import flatbuffers

    schema = fb.schema()
    model = fb.unpack(bytes(tflite_bytes), "<model bytes>")
    if any(buffer.offset for buffer in model.buffers or []):
        raise ModelError("models over 2 GB (buffers stored outside the flatbuffer) are not supported")
    payload = np.frombuffer(json.dumps(description, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    digest = np.frombuffer(fb.weights_digest(model).encode("ascii"), dtype=np.uint8)
    model.buffers = [_aligned_buffer(schema, b.data) for b in model.buffers]
    model.metadata = [m for m in (model.metadata or []) if fb.name(m.name) not in (DESCRIPTION_KEY, fb.WEIGHTS_DIGEST_KEY)]
    for key, data in ((DESCRIPTION_KEY, payload), (fb.WEIGHTS_DIGEST_KEY, digest)):
        model.buffers.append(_aligned_buffer(schema, data))
        entry = schema.MetadataT()
        entry.name = key
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    size = len(tflite_bytes) + len(payload) + 4096
    if compact:
        for subgraph in model.subgraphs:
            for tensor in subgraph.tensors:
                if tensor.name is not None:
                    tensor.name = _short_name(tensor.name)
        _share_empty_buffer(model)
        builder = _SharingBuilder.create(size)
    else:
        builder = flatbuffers.Builder(size)
    return fb.pack(model, builder)


def read_description(model: str | Path | bytes) -> dict:
    """The description embedded in a ``.tflite`` file (a path or its bytes).

    Raises
    ------
    ModelError
        The file is not a TFLite model, or carries no ich-edge description (then it was not
        written by ``ich-edge convert``).
    """
    data, source = fb.read_bytes(model)
    schema = fb.schema()
    fb.check_header(data, source)
    try:
        root = schema.Model.GetRootAs(data, 0)
        entries = [root.Metadata(i) for i in range(root.MetadataLength())]
        raws = [root.Buffers(e.Buffer()).DataAsNumpy() for e in entries if fb.name(e.Name()) == DESCRIPTION_KEY]
    except Exception as err:  # reads past the end of a truncated or damaged file
        raise ModelError(
            f"{source} is a truncated or damaged TFLite file ({len(data)} bytes; {fb.parse_failure(err)} while "
            f"reading its metadata); {fb.CONVERT_AGAIN}"
        ) from err
    if not raws:
        raise ModelError(f"{source} is not an ich-edge model (no {DESCRIPTION_KEY}); convert it with ich-edge convert")
    return parse_description(raws[0], source)


def _op_kind(op_name: str, activation_types: set[str], weight_types: set[str]) -> str:
    """``integer`` (int8/int16 activations), ``hybrid`` (int8 weights, float math) or ``float``."""
    if op_name in ("QUANTIZE", "DEQUANTIZE"):
        return "conversion"
    if activation_types & set(_INTEGER_TYPES):
        return "integer"
    if weight_types & {"int8", "uint8"}:
        return "hybrid"
    return "float"


def op_summary(model: str | Path | bytes) -> dict:
    """Operators of each signature of a ``.tflite``: type, count and how they compute.

    Returns
    -------
    dict
        ``{signature: {"ops": {OP: {"count", "integer", "hybrid", "float", "conversion",
        "weight_dtypes"}}, "weight_bytes": {dtype: bytes}, "variable_tensors": n}}``; a model without signatures
        reports its subgraphs as ``subgraph<i>``. ``integer`` ops run on int8/int16
        activations, ``hybrid`` ops have int8 weights and float activations (dynamic-range
        quantization), ``conversion`` counts QUANTIZE/DEQUANTIZE.
    """
    return summarize_ops(check_model(model, ich_edge=False).tree)  # indices in range: the walk trusts them


def summarize_ops(model_t) -> dict:
    """:func:`op_summary` of an object tree that passed :func:`~ich_edge.runtime.model_check.check_model`."""
    schema = fb.schema()
    type_names = fb.tensor_type_names(schema)
    codes = fb.operator_names(model_t)
    names = {i: f"subgraph{i}" for i in range(len(model_t.subgraphs))}
    for sig in fb.seq(model_t.signatureDefs):
        names[sig.subgraphIndex] = fb.name(sig.signatureKey)
    has_data = [b.data is not None and len(b.data) > 0 for b in fb.seq(model_t.buffers)]
    summary = {}
    for index, subgraph in enumerate(model_t.subgraphs):
        tensors = fb.seq(subgraph.tensors)
        ops: dict[str, dict] = {}
        weight_bytes: Counter = Counter()
        for operator in fb.seq(subgraph.operators):
            op_name = codes[operator.opcodeIndex]
            activations, weights = set(), set()
            for t in [int(i) for i in fb.seq(operator.inputs) if i >= 0]:
                tensor = tensors[t]
                dtype = type_names.get(tensor.type, str(tensor.type))
                (weights if has_data[tensor.buffer] else activations).add(dtype)
            entry = ops.setdefault(
                op_name, {"count": 0, "integer": 0, "hybrid": 0, "float": 0, "conversion": 0, "weight_dtypes": []}
            )
            entry["count"] += 1
            entry[_op_kind(op_name, activations, weights)] += 1
            entry["weight_dtypes"] = sorted(set(entry["weight_dtypes"]) | weights)
        constants = {t.buffer: t.type for t in tensors if has_data[t.buffer]}  # shared buffers once
        for buffer_index, tensor_type in constants.items():
            weight_bytes[type_names.get(tensor_type, str(tensor_type))] += len(model_t.buffers[buffer_index].data)
        summary[names[index]] = {
            "ops": dict(sorted(ops.items())),
            "weight_bytes": dict(sorted(weight_bytes.items())),
            # State that survives an invocation (the fused LSTM of files from older ich-edge): CompiledModel, GPU
            # accelerators and LiteRT.js refuse it, so ich-edge convert writes none.
            "variable_tensors": sum(1 for tensor in tensors if tensor.isVariable),
        }
    return summary


def custom_ops(summary: dict) -> list[str]:
    """Names of non-builtin (custom or Flex) operators in an :func:`op_summary`."""
    return sorted({op for sig in summary.values() for op in sig["ops"] if op.startswith("CUSTOM")})


def format_op_summary(summary: dict) -> str:
    """A small text table of :func:`op_summary`: one row per signature and operator type."""
    lines = [f"{'signature':<10} {'op':<32} {'count':>5} {'integer':>7} {'hybrid':>6} {'float':>5}  weights"]
    for signature, info in summary.items():
        for op, entry in info["ops"].items():
            kinds = "/".join(entry["weight_dtypes"]) or "-"
            lines.append(
                f"{signature:<10} {op:<32} {entry['count']:>5} {entry['integer']:>7} "
                f"{entry['hybrid']:>6} {entry['float']:>5}  {kinds}"
            )
        sizes = ", ".join(f"{dtype} {size / 1024:.1f} KiB" for dtype, size in info["weight_bytes"].items())
        lines.append(f"{signature:<10} {'(constant tensors)':<32} {sizes}")
    return "\n".join(lines)
