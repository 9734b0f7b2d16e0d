"""Int8 storage for the weights of float layers: a mixed file as small as an integer one.

A layer that int8 *arithmetic* breaks (``int8-mixed``, ``qat-int8`` with float groups) stays
float, but its weights need not be stored as float32. :func:`store_float_weights_int8`
rewrites each float32 weight of a ``FULLY_CONNECTED``, ``CONV_2D`` or ``DEPTHWISE_CONV_2D``
op as int8, symmetric per output channel (127 levels each side, zero point 0), and puts a
``DEQUANTIZE`` op at the start of the subgraph that gives the layer its float weights back.

Why this keeps parity where int8 layers did not: only the weights are rounded (at most half a
step of each channel's own scale); activations, the recurrent state and the sigmoid outputs
stay float. XNNPACK unpacks the weights once, when it prepares the graph, and then computes
in float32: on the demo model's head its output equals the builtin kernels' float result to
1e-7, so the file is no more platform-dependent than fp32 (unlike the ``dynamic`` recipe,
whose hybrid kernels quantize activations on the fly). Builtin ops only; XNNPACK takes every
``DEQUANTIZE`` and matmul (``tests/converters/test_weight_storage.py``).

A weight is left float32 when int8 would not make the file smaller (per channel, a scale and
a zero point cost 12 bytes) or when its buffer is shared with another tensor.
"""

from __future__ import annotations

import numpy as np

from ich_edge.runtime import flatbuffer as fb

#: Op -> (index of its weight input, the weight's output-channel axis).
WEIGHT_INPUTS = {"FULLY_CONNECTED": (1, 0), "CONV_2D": (1, 0), "DEPTHWISE_CONV_2D": (1, 3)}
#: Bytes one stored weight tensor costs besides its data: the DEQUANTIZE op, a tensor, a buffer entry.
_TENSOR_OVERHEAD_BYTES = 160
#: Bytes per output channel of per-channel quantization parameters (float32 scale + int64 zero point).
_CHANNEL_BYTES = 12


def quantize_per_channel(weights: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``(int8 weights, float32 scale per channel)``: symmetric, round to nearest, 127 levels each side.

    A channel of zeros gets scale 1 (its int8 values are 0, so it dequantizes to zeros).
    """
    reduce = tuple(a for a in range(weights.ndim) if a != axis)
    peak = np.abs(weights).max(axis=reduce).astype(np.float64)
    scale = np.where(peak > 0, peak / 127.0, 1.0)
    shape = [1] * weights.ndim
    shape[axis] = -1
    q = np.clip(np.round(weights / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def _saves_bytes(weights_count: int, channels: int) -> bool:
    return 3 * weights_count > channels * _CHANNEL_BYTES + _TENSOR_OVERHEAD_BYTES


def _dequantize_opcode(model, schema) -> int:
    code = schema.BuiltinOperator.DEQUANTIZE
    for index, opcode in enumerate(model.operatorCodes):
        if max(opcode.builtinCode, opcode.deprecatedBuiltinCode) == code:
            return index
    opcode = schema.OperatorCodeT()
    opcode.builtinCode, opcode.deprecatedBuiltinCode, opcode.version = code, code, 1
    model.operatorCodes.append(opcode)
    return len(model.operatorCodes) - 1


def _buffer_users(model) -> dict[int, int]:
    users: dict[int, int] = {}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            users[tensor.buffer] = users.get(tensor.buffer, 0) + 1
    return users


def _weight_tensors(model, subgraph) -> dict[int, int]:
    """Tensor index -> output-channel axis, for the float32 constant weights worth storing as int8."""
    schema = fb.schema()
    names = fb.operator_names(model)
    users = _buffer_users(model)
    found: dict[int, int] = {}
    for op in subgraph.operators:
        slot = WEIGHT_INPUTS.get(names[op.opcodeIndex])
        if slot is None or len(op.inputs) <= slot[0] or op.inputs[slot[0]] < 0:
            continue
        index, axis = op.inputs[slot[0]], slot[1]
        tensor = subgraph.tensors[index]
        data = model.buffers[tensor.buffer].data
        if tensor.type != schema.TensorType.FLOAT32 or data is None or users[tensor.buffer] != 1:
            continue
        shape = list(tensor.shape)
        if _saves_bytes(int(np.prod(shape)), shape[axis]):
            found[index] = axis
    return found


def store_float_weights_int8(model_bytes: bytes) -> tuple[bytes, int]:
    """``(new model bytes, weights rewritten)``: every float layer's weights stored as int8 (module docstring).

    A model with no float32 weights worth rewriting (an all-integer file) comes back unchanged.
    """
    schema = fb.schema()
    model = fb.unpack(model_bytes)
    rewritten = 0
    for subgraph in model.subgraphs:
        weights = _weight_tensors(model, subgraph)
        if not weights:
            continue
        dequantize = _dequantize_opcode(model, schema)
        unpack_ops = []
        for index, axis in weights.items():
            tensor = subgraph.tensors[index]
            buffer = model.buffers[tensor.buffer]
            values = np.frombuffer(bytes(bytearray(buffer.data)), np.float32).reshape(list(tensor.shape))
            q, scale = quantize_per_channel(values, axis)
            buffer.data = np.frombuffer(q.tobytes(), np.uint8)  # the buffer now holds the int8 weights
            stored = schema.TensorT()
            stored.shape, stored.type, stored.buffer = list(tensor.shape), schema.TensorType.INT8, tensor.buffer
            stored.name = (tensor.name or b"weights") + b"/int8"
            params = schema.QuantizationParametersT()
            params.scale, params.zeroPoint, params.quantizedDimension = scale.tolist(), [0] * len(scale), axis
            stored.quantization = params
            subgraph.tensors.append(stored)
            empty = schema.BufferT()
            model.buffers.append(empty)
            tensor.buffer = len(model.buffers) - 1  # the float tensor is now DEQUANTIZE's output
            op = schema.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = dequantize, [len(subgraph.tensors) - 1], [index]
            unpack_ops.append(op)
            rewritten += 1
        subgraph.operators = unpack_ops + list(subgraph.operators)
    if not rewritten:
        return model_bytes, 0
    return fb.pack(model), rewritten
