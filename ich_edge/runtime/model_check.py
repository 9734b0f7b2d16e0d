"""The gate every model file passes before LiteRT's interpreter sees it (runtime tier).

LiteRT's C++ interpreter does not verify a flatbuffer before it uses it, so a damaged file
can end the process instead of raising. :func:`check_model_file` reads the file in Python
first: header, a complete parse (every read stays inside the file, so truncation is
caught), every index that points into another table, constant sizes, the weights against
the digest recorded at conversion (:func:`~ich_edge.runtime.flatbuffer.weights_digest`: a
flipped weight byte parses and runs, and answers with confidence), the ``encode`` and
``classify`` signatures and the description, whose values are checked like any input
(:func:`description_problem`: finite thresholds in [0, 1], finite windows, an input size and
window equal to the tensors'). Whatever is wrong becomes one
:class:`~ich_edge.errors.ModelError` naming the file and what to do.
:meth:`ich_edge.runtime.model_file.ModelFile.open` calls it (and
:class:`~ich_edge.runtime.tflite_model.TFLiteStudyModel` opens a ModelFile), so every verb
that opens a model (predict, bench, parity, assets) gets it, once per file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ich_edge.errors import ModelError
from ich_edge.runtime import flatbuffer as fb
from ich_edge.runtime.flatbuffer import DESCRIPTION_KEY, parse_description

#: The two signatures of an ich-edge model (see ich_edge.runtime.tflite_model).
ENCODE, CLASSIFY = "encode", "classify"
#: Signature -> (input rank, output rank) of an ich-edge model.
ICH_EDGE_SIGNATURES = {ENCODE: (4, 2), CLASSIFY: (3, 3)}
#: Largest model input side and window a description may ask for: a head CT is 512 x 512 and
#: 20-60 slices; a description asking for more (60,000 px drove predict to 23 GB) is damaged.
MAX_INPUT_SIZE_PX, MAX_WINDOW_SLICES = 1024, 1024
#: Window centers and widths beyond this many HU cannot be CT windows.
MAX_WINDOW_HU = 100_000.0
#: Bytes per element of fixed-size tensor types (others are not size-checked).
_ITEM_BYTES = {
    "float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "bool": 1, "int16": 2, "complex64": 8,
    "int8": 1, "float64": 8, "complex128": 16, "uint64": 8, "uint32": 4, "uint16": 2, "bfloat16": 2,
}

#: The options table LiteRT's parser reads for these operators without checking its type: a
#: SPLIT whose options type was damaged (any other type, NONE included) crashed LiteRT 2.3.0 with
#: a segmentation fault (tests/runtime/test_model_files.py). What the TFLite converter writes.
OPTIONS_OF = {
    "ADD": "AddOptions", "CONCATENATION": "ConcatenationOptions", "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions", "FULLY_CONNECTED": "FullyConnectedOptions",
    "MEAN": "ReducerOptions", "MUL": "MulOptions", "PACK": "PackOptions", "SPLIT": "SplitOptions",
    "STRIDED_SLICE": "StridedSliceOptions", "UNPACK": "UnpackOptions",
}


@dataclass(frozen=True)
class CheckedModel:
    """A ``.tflite`` that passed :func:`check_model`: its description and its object tree.

    The tree (the schema's ``ModelT``) is what the check parsed; callers that need more
    than the description (the op summary, variable tensors) read it instead of parsing the
    file again, which costs as much as the check itself.
    """

    description: dict
    tree: Any


def check_model_file(model: str | Path | bytes, ich_edge: bool = True) -> dict:
    """The description of a ``.tflite`` that passed :func:`check_model` (see there)."""
    return check_model(model, ich_edge).description


def check_model(model: str | Path | bytes, ich_edge: bool = True, source: str | None = None) -> CheckedModel:
    """Validate a ``.tflite`` before LiteRT opens it; return its description and object tree.

    Checks, in order: the file is readable and non-empty; the TFL3 identifier; the whole
    flatbuffer parses (every read stays inside the file, so truncation is caught); every
    index into another table is in range (tensor buffers, operator codes, operator and
    subgraph tensors, signatures, metadata); constant tensors hold exactly their shape's
    bytes; operator codes are builtins this schema knows or named custom ops. With
    ``ich_edge`` (the default) also: the ``encode`` and ``classify`` signatures with one
    input and one output of the right rank each, and a description with labels, a valid
    sequence rule and values fit to run (:func:`description_problem`). ``source`` names the
    file in messages when ``model`` is its bytes (default: the path, or ``<model bytes>``).

    Returns
    -------
    CheckedModel
        The embedded description (``{}`` when ``ich_edge`` is False and there is none) and
        the parsed object tree.

    Raises
    ------
    ModelError
        One message naming the file, what is wrong and what to do.
    """
    data, read_from = fb.read_bytes(model)
    source = source or read_from
    schema = fb.schema()
    model_t = fb.unpack(data, source)
    try:
        _check_tables(model_t, schema, len(data))
    except ModelError as err:
        raise ModelError(f"{source} is a damaged TFLite file ({err}); {fb.CONVERT_AGAIN}") from None
    _check_weights_digest(model_t, source)
    raws = fb.description_bytes(model_t)
    if not ich_edge:
        return CheckedModel(parse_description(raws[0], source) if raws else {}, model_t)
    signatures = {fb.name(sig.signatureKey): sig for sig in model_t.signatureDefs or []}
    missing = sorted(set(ICH_EDGE_SIGNATURES) - set(signatures))
    if missing:
        found = ", ".join(sorted(signatures)) or "none"
        raise ModelError(
            f"{source} is not an ich-edge model: it lacks the signature(s) {', '.join(missing)} (has: {found}); "
            "pass a .tflite written by `ich-edge convert`"
        )
    shapes = {}
    for key, (input_rank, output_rank) in ICH_EDGE_SIGNATURES.items():
        sig = signatures[key]
        tensors = model_t.subgraphs[sig.subgraphIndex].tensors
        for role, entries, rank in (("input", sig.inputs, input_rank), ("output", sig.outputs, output_rank)):
            found = [[int(d) for d in (tensors[e.tensorIndex].shape if tensors[e.tensorIndex].shape is not None else [])]
                     for e in entries or []]
            if len(found) != 1 or len(found[0]) != rank:
                raise ModelError(
                    f"{source}: signature {key!r} should have one {role} of rank {rank}, found shapes {found}; "
                    "it is not an ich-edge model, pass a .tflite written by `ich-edge convert`"
                )
            shapes[key, role] = found[0]
    if not raws:
        raise ModelError(f"{source} is not an ich-edge model (no {DESCRIPTION_KEY}); convert it with ich-edge convert")
    description = parse_description(raws[0], source)
    _check_description(description, source)
    _check_signature_shapes(shapes, len(description["labels"]), source)
    problem = description_problem(description, shapes["encode", "input"][1], shapes["classify", "input"][1])
    if problem:
        raise ModelError(f"{source}: its ich-edge description is not usable ({problem}); convert the model again with `ich-edge convert`")
    return CheckedModel(description, model_t)


def _check_weights_digest(model_t, source: str) -> None:
    """The weights are those ``ich-edge convert`` wrote: a damaged or altered file is refused.

    A byte flipped in a weight, a scale or an operator's wiring leaves a file that parses and
    runs, and answers with confidence. Files written before the digest existed have none and
    are not checked here (the app manifest's sha256 still covers them).
    """
    recorded = fb.recorded_weights_digest(model_t)
    if recorded is None:
        return
    actual = fb.weights_digest(model_t)
    if recorded != actual:
        raise ModelError(
            f"{source}: its weights differ from those recorded when it was converted ({fb.WEIGHTS_DIGEST_KEY} "
            f"{recorded[:12]}..., the weights give {actual[:12]}...): the file was damaged or altered after "
            f"conversion; copy it again from its source or {fb.CONVERT_AGAIN}"
        )


def _check_signature_shapes(shapes: dict, num_labels: int, source: str) -> None:
    """image (B, S, S, 3) -> features (B, F); window (1, T, F) -> probabilities (1, T, labels)."""
    image, features = shapes["encode", "input"], shapes["encode", "output"]
    window, probabilities = shapes["classify", "input"], shapes["classify", "output"]
    ok = (
        image[1] == image[2] > 0 and image[3] == 3
        and window[0] == probabilities[0] == 1 and window[1] == probabilities[1] > 0
        and window[2] == features[1] > 0 and probabilities[2] == num_labels
    )
    if not ok:
        raise ModelError(
            f"{source}: its signatures do not fit together (encode {image} -> {features}, classify {window} -> "
            f"{probabilities}, {num_labels} labels); it is damaged or not an ich-edge model, "
            "pass a .tflite written by `ich-edge convert`"
        )


def _check_description(description: dict, source: str) -> None:
    from ich_edge.errors import ConfigError
    from ich_edge.sequence import SequenceConfig

    labels = description.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
        raise ModelError(f"{source}: the embedded ich-edge description lacks its labels; convert the model again")
    try:
        SequenceConfig.from_dict(description["sequence"])
    except (KeyError, TypeError, ValueError, ConfigError) as err:
        raise ModelError(
            f"{source}: the embedded ich-edge description lacks a valid sequence rule ({err}); convert the model again"
        ) from err


def _finite(value) -> bool:
    """A JSON number (not a bool, not a string) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def description_problem(description: dict, input_size_px: int, window_slices: int) -> str | None:
    """What makes a description unfit to run (None when it is fit): its values are input too.

    The description decides the verdict as much as the weights do, so every value in it is
    checked like a header value: labels unique strings; the preprocessing's three windows
    finite with width > 0 (low < high), its ``input_size_px`` equal to the ``encode`` input
    tensor's side (``input_size_px``) and at most :data:`MAX_INPUT_SIZE_PX`; the sequence's
    ``window_slices`` equal to the ``classify`` input's (``window_slices``), its stride in
    1..window; every threshold a finite number in [0, 1]. A NaN threshold would make every
    study NEGATIVE, a NaN window every study POSITIVE.
    """
    labels = description["labels"]
    if len(set(labels)) != len(labels):
        return f"labels {labels} repeat a name"
    for check in (_preprocessing_problem, _sequence_problem, _thresholds_problem):
        problem = check(description, input_size_px, window_slices)
        if problem:
            return problem
    return None


def _preprocessing_problem(description: dict, input_size_px: int, window_slices: int) -> str | None:
    pre = description.get("preprocessing")
    if not isinstance(pre, dict):
        return "no preprocessing object"
    size = pre.get("input_size_px")
    if not _whole(size) or not 8 <= size <= MAX_INPUT_SIZE_PX:
        return f"preprocessing input_size_px {size!r} is not a whole number in 8..{MAX_INPUT_SIZE_PX}"
    if size != input_size_px:
        return f"preprocessing input_size_px {size} differs from the encode input tensor's {input_size_px} px"
    windows = pre.get("windows_hu")
    if not isinstance(windows, list) or len(windows) != 3:
        return "preprocessing windows_hu is not three (center_hu, width_hu) pairs"
    for index, window in enumerate(windows):
        if not isinstance(window, list) or len(window) != 2 or not all(_finite(v) for v in window):
            return f"preprocessing window {index} {window!r} is not two finite numbers (center_hu, width_hu)"
        center_hu, width_hu = window
        if not 0 < width_hu <= MAX_WINDOW_HU or abs(center_hu) > MAX_WINDOW_HU:
            return f"preprocessing window {index} (center {center_hu} HU, width {width_hu} HU) needs 0 < width (low < high), both within {MAX_WINDOW_HU:.0f} HU"
    names = pre.get("window_names", ["brain", "subdural", "bone"])
    if not isinstance(names, list) or len(names) != 3 or not all(isinstance(n, str) for n in names):
        return f"preprocessing window_names {names!r} is not three names"
    if pre.get("resize_method", "area") != "area":
        return f"preprocessing resize_method {pre.get('resize_method')!r} is not 'area'"
    return None


def _sequence_problem(description: dict, input_size_px: int, window_slices: int) -> str | None:
    sequence = description.get("sequence")
    window, stride = sequence.get("window_slices"), sequence.get("stride_slices")
    if not _whole(window) or not _whole(stride) or not 2 <= window <= MAX_WINDOW_SLICES or not 1 <= stride <= window:
        return f"sequence window_slices {window!r} / stride_slices {stride!r} are not whole numbers with 1 <= stride <= window <= {MAX_WINDOW_SLICES}"
    if window != window_slices:
        return f"sequence window_slices {window} differs from the classify input tensor's {window_slices} slices"
    return None


def _thresholds_problem(description: dict, input_size_px: int, window_slices: int) -> str | None:
    thresholds = description.get("thresholds")
    if thresholds is None:
        return None  # predict then uses its stated default and says so
    if not isinstance(thresholds, dict):
        return f"thresholds {thresholds!r} is not an object"
    specificity = thresholds.get("specificity")
    if specificity is not None and not (_finite(specificity) and 0 <= specificity <= 1):
        return f"thresholds specificity {specificity!r} is not a number in [0, 1]"
    for level in ("slice", "study"):
        table = thresholds.get(level)
        if table is None:
            continue
        if not isinstance(table, dict):
            return f"{level} thresholds {table!r} is not an object of label: threshold"
        for label, value in table.items():
            if not (_finite(value) and 0 <= value <= 1):
                return f"{level} threshold of {label!r} is {value!r}, not a finite number in [0, 1]"
    return None


def _in_range(index, size: int, what: str, allow_none: bool = False) -> None:
    if allow_none and index == -1:
        return
    if not 0 <= int(index) < size:
        raise ModelError(f"{what} {int(index)} out of range (0..{size - 1})")


def _check_tables(model_t, schema, file_bytes: int) -> None:
    """Index and size checks of an unpacked model; ModelError (without the file name) if any fails."""
    buffers, codes, subgraphs = model_t.buffers or [], model_t.operatorCodes or [], model_t.subgraphs or []
    if not subgraphs:
        raise ModelError("no subgraphs")
    type_names = fb.tensor_type_names(schema)
    op_names = fb.builtin_op_names(schema)
    options = fb.builtin_options_names(schema)
    for code in codes:
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        if builtin not in op_names:
            raise ModelError(f"unknown operator code {builtin}")
    for buffer in buffers:
        if buffer.offset and buffer.offset + buffer.size > file_bytes:
            raise ModelError("a buffer lies past the end of the file")
    for s_index, subgraph in enumerate(subgraphs):
        tensors = subgraph.tensors or []
        where = f"subgraph {s_index}"
        for t_index, tensor in enumerate(tensors):
            _in_range(tensor.buffer, len(buffers), f"{where} tensor {t_index} buffer")
            if tensor.type not in type_names:
                raise ModelError(f"{where} tensor {t_index} has unknown type {tensor.type}")
            shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
            if any(d < 0 for d in shape):
                raise ModelError(f"{where} tensor {t_index} has a negative dimension {shape}")
            _check_text(tensor.name, f"{where} tensor {t_index} name")
            _check_quantization(tensor.quantization, type_names[tensor.type], len(shape), f"{where} tensor {t_index}")
            data = buffers[tensor.buffer].data
            item = _ITEM_BYTES.get(type_names[tensor.type])
            if data is not None and len(data) and item and tensor.sparsity is None:
                if len(data) != int(np.prod(shape, dtype=np.int64)) * item:
                    raise ModelError(f"{where} tensor {t_index} holds {len(data)} bytes, its shape {shape} needs more or fewer")
        for index in [*(subgraph.inputs if subgraph.inputs is not None else []), *(subgraph.outputs if subgraph.outputs is not None else [])]:
            _in_range(index, len(tensors), f"{where} input/output tensor")
        for o_index, operator in enumerate(subgraph.operators or []):
            _in_range(operator.opcodeIndex, len(codes), f"{where} operator {o_index} code")
            _check_options(operator, codes, op_names, options, f"{where} operator {o_index}")
            for group in (operator.inputs, operator.outputs, operator.intermediates):
                for index in group if group is not None else []:
                    _in_range(index, len(tensors), f"{where} operator {o_index} tensor", allow_none=True)
    for sig in model_t.signatureDefs or []:
        _check_text(sig.signatureKey, "signature name")
        _in_range(sig.subgraphIndex, len(subgraphs), "signature subgraph")
        tensors = subgraphs[sig.subgraphIndex].tensors or []
        for entry in [*(sig.inputs or []), *(sig.outputs or [])]:
            _check_text(entry.name, "signature tensor name")
            _in_range(entry.tensorIndex, len(tensors), f"signature {fb.name(sig.signatureKey)!r} tensor")
    for entry in model_t.metadata or []:
        _check_text(entry.name, "metadata name")
        _in_range(entry.buffer, len(buffers), "metadata buffer")


def _check_options(operator, codes, op_names: dict, options: dict, what: str) -> None:
    """A known options type, and for the operators of :data:`OPTIONS_OF` the one their parser reads."""
    kind = int(operator.builtinOptionsType or 0)
    if kind not in options:
        raise ModelError(f"{what} has unknown options type {kind}")
    code = codes[operator.opcodeIndex]
    name = op_names.get(max(int(code.builtinCode), int(code.deprecatedBuiltinCode)))
    if name in OPTIONS_OF and options[kind] != OPTIONS_OF[name]:
        raise ModelError(f"{what} ({name}) carries {options[kind]}, not {OPTIONS_OF[name]}")


def _check_text(raw, what: str) -> None:
    """Flatbuffer strings are UTF-8; the interpreter's Python binding fails on others."""
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelError(f"{what} is not UTF-8") from None


#: Zero points allowed per integer type (TFLite's quantization spec).
_ZERO_POINT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (0, 0), "int32": (0, 0), "int4": (-8, 7)}


def _check_quantization(quantization, type_name: str, rank: int, what: str) -> None:
    """Scales and zero points that LiteRT's kernels accept (it fails at run time otherwise)."""
    if quantization is None:
        return
    scales = np.asarray(quantization.scale if quantization.scale is not None else [], dtype=np.float64)
    zero_points = np.asarray(quantization.zeroPoint if quantization.zeroPoint is not None else [], dtype=np.int64)
    if not len(scales) and not len(zero_points):
        return
    if len(zero_points) and len(scales) != len(zero_points):
        raise ModelError(f"{what} has {len(scales)} scales and {len(zero_points)} zero points")
    if len(scales) and not (np.all(np.isfinite(scales)) and np.all(scales >= 0)):
        raise ModelError(f"{what} has a negative or non-finite quantization scale")
    if len(scales) > 1 and not 0 <= int(quantization.quantizedDimension) < max(rank, 1):
        raise ModelError(f"{what} is quantized along dimension {quantization.quantizedDimension} of a rank-{rank} tensor")
    low, high = _ZERO_POINT_RANGE.get(type_name, (None, None))
    if low is not None and len(zero_points) and (zero_points.min() < low or zero_points.max() > high):
        raise ModelError(f"{what} ({type_name}) has a zero point outside [{low}, {high}]")
