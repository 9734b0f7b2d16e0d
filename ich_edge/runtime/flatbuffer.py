"""The one reader of the ``.tflite`` flatbuffer: bytes in, the schema's object tree out.

:mod:`ich_edge.runtime.description` (embedded description, op summary),
:mod:`ich_edge.runtime.model_check` (damaged and foreign files) and
:mod:`ich_edge.runtime.coverage` (signature cuts, MACs) all read files through here, so a
truncated or foreign file gets the same one-line :class:`~ich_edge.errors.ModelError`
whichever of them reads it first.

Runtime tier: numpy, flatbuffers and ``ai_edge_litert.schema_py_generated`` only.
"""

from __future__ import annotations

import importlib
import json
import struct
from pathlib import Path

import numpy as np

from ich_edge.errors import MissingDependencyError, ModelError

FILE_IDENTIFIER = b"TFL3"
#: The ``metadata`` name under which ``ich-edge convert`` stores the description (JSON).
DESCRIPTION_KEY = "ich_edge_description"
#: The ``metadata`` name of the :func:`weights_digest` written beside the description (hex).
WEIGHTS_DIGEST_KEY = "ich_edge_weights_sha256"
CONVERT_AGAIN = "pass a .tflite written by `ich-edge convert` (convert it again if it was damaged)"


def schema():
    """The generated TFLite flatbuffer schema module (ships with ai-edge-litert)."""
    try:
        return importlib.import_module("ai_edge_litert.schema_py_generated")
    except ImportError as err:
        raise MissingDependencyError(
            "reading .tflite files needs ai-edge-litert (pip install ai-edge-litert)"
        ) from err


def read_bytes(model: str | Path | bytes) -> tuple[bytes, str]:
    """``(bytes, source name for messages)`` of a path or of bytes."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "<model bytes>"
    path = Path(model)
    try:
        return path.read_bytes(), str(path)
    except OSError as err:
        raise ModelError(f"cannot read model file {path}: {err.strerror or err}") from err


def check_header(data: bytes, source: str) -> None:
    """Non-empty, the TFL3 identifier, and a root table inside the file; :class:`ModelError` if not."""
    if not data:
        raise ModelError(f"{source} is empty (0 bytes); {CONVERT_AGAIN}")
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ModelError(f"{source} is not a TFLite flatbuffer (no TFL3 identifier); {CONVERT_AGAIN}")
    if struct.unpack_from("<I", data, 0)[0] + 4 > len(data):
        raise ModelError(f"{source} is truncated or damaged (its root table lies past the end, {len(data)} bytes); {CONVERT_AGAIN}")


def parse_failure(err: Exception) -> str:
    """A few words for a parser exception (flatbuffers raises plain errors on damaged files)."""
    return "a read past its end" if isinstance(err, struct.error) else type(err).__name__


def unpack(data: bytes, source: str = "<model bytes>"):
    """The object tree (``ModelT``) of a ``.tflite`` file's bytes; one-line :class:`ModelError` if damaged."""
    tflite = schema()
    data = bytes(data)
    check_header(data, source)
    try:
        return tflite.ModelT.InitFromPackedBuf(data, 0)
    except Exception as err:  # flatbuffers raises plain errors (struct.error, ...) on damaged files
        raise ModelError(
            f"{source} is a truncated or damaged TFLite file ({len(data)} bytes; {parse_failure(err)} while "
            f"parsing it); {CONVERT_AGAIN}"
        ) from err


def description_bytes(model_t) -> list:
    """The raw buffers of every :data:`DESCRIPTION_KEY` metadata entry of an object tree (usually one)."""
    return [model_t.buffers[m.buffer].data for m in seq(model_t.metadata) if name(m.name) == DESCRIPTION_KEY]


def weights_digest(model_t) -> str:
    """SHA-256 (hex) of what a model computes with: every operator and tensor, not the metadata.

    The signatures (name, subgraph, input and output names and tensor indices); per subgraph,
    in order: its input and output tensors, each operator's name, its input and output tensor
    indices and its options (strides, padding, fused activation, ...); each tensor's type, shape,
    quantization (scales, zero points, axis) and constant bytes. Tensor names, buffer
    numbering and metadata are left out, so re-embedding a description keeps the digest,
    while one changed weight byte, scale, option or wiring changes it. Values are hashed as
    plain Python numbers and lists, so numpy's version does not change the digest. It finds
    damage, not tampering: anyone can recompute it (a signature would be needed for that), and
    a file without it is accepted (files converted before it existed).
    """
    import hashlib

    digest = hashlib.sha256()
    buffers, op_names = seq(model_t.buffers), operator_names(model_t)

    def add(*values) -> None:
        digest.update(repr(values).encode("utf-8"))

    for sig in seq(model_t.signatureDefs):  # which tensors the app feeds and reads
        add("signature", name(sig.signatureKey), int(sig.subgraphIndex),
            [(name(e.name), int(e.tensorIndex)) for e in seq(sig.inputs)],
            [(name(e.name), int(e.tensorIndex)) for e in seq(sig.outputs)])
    for subgraph in seq(model_t.subgraphs):
        add("subgraph", len(seq(subgraph.tensors)), len(seq(subgraph.operators)),
            [int(i) for i in seq(subgraph.inputs)], [int(i) for i in seq(subgraph.outputs)])
        for operator in seq(subgraph.operators):
            code = int(operator.opcodeIndex)
            add(op_names[code] if 0 <= code < len(op_names) else code,
                [int(i) for i in seq(operator.inputs)], [int(i) for i in seq(operator.outputs)],
                int(operator.builtinOptionsType or 0), _plain(operator.builtinOptions),
                _plain(operator.customOptions))
        for tensor in seq(subgraph.tensors):
            quantization = tensor.quantization
            scales = zero_points = axis = None
            if quantization is not None:
                scales = np.asarray(seq(quantization.scale), dtype=np.float32).tobytes()
                zero_points = np.asarray(seq(quantization.zeroPoint), dtype=np.int64).tobytes()
                axis = int(quantization.quantizedDimension)
            add(int(tensor.type), [int(d) for d in seq(tensor.shape)], scales, zero_points, axis)
            index = int(tensor.buffer)
            data = buffers[index].data if 0 <= index < len(buffers) else None
            if data is not None and len(data):
                digest.update(np.asarray(data, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def _plain(value):
    """``value`` (an options object of the schema, a vector, a number) as plain Python values.

    An object keeps only the fields that differ from a fresh instance's: fields that newer
    schemas added (unknown to an older ai-edge-litert's schema, at their default in files that
    do not use them) leave the digest the same on every runtime version.
    """
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    try:
        default = type(value)()
    except TypeError:
        default = None
    fields = [(key, _plain(v)) for key, v in vars(value).items()]
    if default is not None:
        fields = [(key, v) for key, v in fields if v != _plain(getattr(default, key, None))]
    return sorted(fields)


def recorded_weights_digest(model_t) -> str | None:
    """The :data:`WEIGHTS_DIGEST_KEY` entry of an object tree (hex text), or None when there is none."""
    raws = [model_t.buffers[m.buffer].data for m in seq(model_t.metadata) if name(m.name) == WEIGHTS_DIGEST_KEY]
    if not raws:
        return None
    return np.asarray(raws[0], dtype=np.uint8).tobytes().decode("ascii", errors="replace")


def parse_description(raw, source: str) -> dict:
    """The description dict of its raw metadata bytes; :class:`ModelError` if it is not a JSON object."""
    try:
        description = json.loads(np.asarray(raw, dtype=np.uint8).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as err:
        raise ModelError(f"{source}: the ich-edge description is damaged; convert the model again") from err
    if not isinstance(description, dict):
        raise ModelError(f"{source}: the ich-edge description is not a JSON object; convert the model again")
    return description


def pack(model_t, builder=None) -> bytes:
    """The bytes of an object tree, with the TFL3 identifier (``builder``: a ``flatbuffers.Builder``)."""
    if builder is None:
        import flatbuffers

        builder = flatbuffers.Builder(1024)
    builder.Finish(model_t.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def name(raw) -> str:
    """A flatbuffer string (bytes) as ``str``."""
    return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)


def seq(values) -> list:
    """A flatbuffer vector of the object API, or [] where the file leaves it out (None)."""
    return [] if values is None else values


def tensor_type_names(tflite_schema=None) -> dict[int, str]:
    """``{TensorType value: "float32", "int8", ...}``."""
    tflite_schema = tflite_schema or schema()
    return {v: k.lower() for k, v in vars(tflite_schema.TensorType).items() if not k.startswith("_")}


def builtin_op_names(tflite_schema=None) -> dict[int, str]:
    """``{BuiltinOperator value: "CONV_2D", ...}``."""
    tflite_schema = tflite_schema or schema()
    return {v: k for k, v in vars(tflite_schema.BuiltinOperator).items() if not k.startswith("_")}


def builtin_options_names(tflite_schema=None) -> dict[int, str]:
    """``{BuiltinOptions value: "Conv2DOptions", ...}`` (0: ``NONE``)."""
    tflite_schema = tflite_schema or schema()
    return {v: k for k, v in vars(tflite_schema.BuiltinOptions).items() if not k.startswith("_")}


def operator_names(model_t) -> list[str]:
    """The name of each operator code of a model (``CONV_2D``; ``CUSTOM:<code>`` for custom ops)."""
    op_names = builtin_op_names()
    names = []
    for code in seq(model_t.operatorCodes):
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        op_name = op_names.get(builtin, f"OP{builtin}")
        names.append(f"CUSTOM:{name(code.customCode)}" if op_name == "CUSTOM" else op_name)
    return names


def signature_subgraphs(model_t) -> dict[str, int]:
    """``{signature key: subgraph index}`` of a model."""
    return {name(sig.signatureKey): int(sig.subgraphIndex) for sig in seq(model_t.signatureDefs)}
