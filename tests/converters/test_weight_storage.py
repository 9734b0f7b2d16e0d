"""Float layers of a mixed file store their weights as int8 (converters.weight_storage): smaller, float arithmetic, XNNPACK."""

from __future__ import annotations

import numpy as np
import pytest

from ich_edge.cli import main
from ich_edge.runtime import flatbuffer as fb

KEEP = "stem_conv,block1_dw,bilstm"  # a conv, a depthwise conv (channel axis 3) and the recurrent matmuls


def test_per_channel_rounding_is_within_half_a_step_of_each_channel():
    from converters.weight_storage import quantize_per_channel

    rng = np.random.default_rng(0)
    weights = rng.normal(size=(3, 3, 5, 6)).astype(np.float32) * np.array([1e-3, 1, 10, 0.1, 5, 2], np.float32)
    weights[..., 2] = 0.0  # a dead channel
    for axis in (0, 3):
        q, scale = quantize_per_channel(weights, axis)
        shape = [1] * 4
        shape[axis] = -1
        error = np.abs(q.astype(np.float32) * scale.reshape(shape) - weights)
        assert q.dtype == np.int8 and np.abs(q).max() == 127
        assert (error <= scale.reshape(shape) / 2 + 1e-9).all()
        assert (error.max(axis=tuple(a for a in range(4) if a != axis)) < 0.02 * np.abs(weights).max()).all()


@pytest.fixture(scope="module")
def mixed_pair(tiny_data, tmp_path_factory):
    """The same int8-mixed file with the float layers' weights stored as int8 and as float32."""
    cache, _, run = tiny_data
    files = {}
    for weights in ("int8", "float32"):
        out = tmp_path_factory.mktemp(f"weights_{weights}")
        code = main(["convert", "--model", str(run), "--precision", "int8-mixed", "--keep-float", KEEP, "--float-weights",
                     weights, "--data", str(cache), "--out", str(out), "--no-layer-report"])
        assert code == 0
        files[weights] = (out / "cnn_lstm_int8-mixed.tflite").read_bytes()
    return files


def _int8_dequantized_weights(payload: bytes) -> int:
    schema, model = fb.schema(), fb.unpack(payload)
    names = fb.operator_names(model)
    return sum(1 for sg in model.subgraphs for op in sg.operators if names[op.opcodeIndex] == "DEQUANTIZE"
               and sg.tensors[op.inputs[0]].type == schema.TensorType.INT8
               and model.buffers[sg.tensors[op.inputs[0]].buffer].data is not None)


def test_float_layers_store_int8_weights_and_the_file_is_smaller(mixed_pair):
    assert _int8_dequantized_weights(mixed_pair["int8"]) >= 3  # stem, depthwise, recurrent kernels
    assert _int8_dequantized_weights(mixed_pair["float32"]) == 0
    assert len(mixed_pair["int8"]) < len(mixed_pair["float32"])


def _outputs(payload: bytes, delegate: bool) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {} if delegate else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    interpreter = Interpreter(model_content=payload, num_threads=1, **kwargs)
    rng = np.random.default_rng(1)
    outputs = []
    for signature in ("encode", "classify"):
        runner = interpreter.get_signature_runner(signature)
        ((name, details),) = runner.get_input_details().items()
        shape = [1, *details["shape"][1:]]
        sample = rng.uniform(0, 1, shape) if signature == "encode" else rng.normal(0, 1, shape)
        outputs.extend(runner(**{name: sample.astype(np.float32)}).values())
    return outputs


def test_xnnpack_takes_every_matmul_and_computes_in_float(mixed_pair):
    """Float arithmetic on the dequantized weights: XNNPACK gives what the builtin float kernels give
    (a hybrid kernel that quantized activations on the fly would not), and close to the float32 weights."""
    from ich_edge.runtime.coverage import xnnpack_coverage

    payload = mixed_pair["int8"]
    for signature, coverage in xnnpack_coverage(payload).items():
        left = coverage.not_delegated
        assert not {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE"} & set(left), (signature, left)
    xnnpack, builtin, float32 = _outputs(payload, True), _outputs(payload, False), _outputs(mixed_pair["float32"], True)
    for a, b, c in zip(xnnpack, builtin, float32):
        np.testing.assert_allclose(a, b, atol=1e-5)
        assert np.abs(a - c).max() < 0.05 * max(np.abs(c).max(), 1.0)


def test_a_shared_weight_buffer_stays_float32(mixed_pair):
    """Two tensors on one buffer: rewriting it for one would change the other's type under it."""
    from converters.weight_storage import store_float_weights_int8

    payload = mixed_pair["float32"]
    model = fb.unpack(payload)
    names = fb.operator_names(model)
    subgraph = next(sg for sg in model.subgraphs if fb.name(sg.name) == "classify")
    op = next(op for op in subgraph.operators if names[op.opcodeIndex] == "FULLY_CONNECTED"
              and subgraph.tensors[op.inputs[1]].type == fb.schema().TensorType.FLOAT32)
    weight = subgraph.tensors[op.inputs[1]]
    twin = fb.schema().TensorT()
    twin.shape, twin.type, twin.buffer, twin.name = list(weight.shape), weight.type, weight.buffer, b"twin"
    subgraph.tensors.append(twin)
    shared = fb.pack(model)
    rewritten, count = store_float_weights_int8(shared)
    after = fb.unpack(rewritten)
    tensor = next(sg for sg in after.subgraphs if fb.name(sg.name) == "classify").tensors[op.inputs[1]]
    assert tensor.type == fb.schema().TensorType.FLOAT32 and after.buffers[tensor.buffer].data is not None
    assert count == store_float_weights_int8(payload)[1] - 1


def test_the_stored_weights_dequantize_to_the_float_weights_within_half_a_step(mixed_pair):
    """What the runtime unpacks (int8 x the file's own scale, along its channel axis) is the float32 weight, rounded."""
    schema = fb.schema()
    stored, plain = fb.unpack(mixed_pair["int8"]), fb.unpack(mixed_pair["float32"])
    names = fb.operator_names(stored)
    checked = 0
    for sg, ref in zip(stored.subgraphs, plain.subgraphs):
        by_name = {t.name: t for t in ref.tensors if plain.buffers[t.buffer].data is not None}  # the constants
        for op in sg.operators:
            source = sg.tensors[op.inputs[0]]
            if names[op.opcodeIndex] != "DEQUANTIZE" or source.type != schema.TensorType.INT8 \
                    or stored.buffers[source.buffer].data is None:  # an activation at an int8 -> float border
                continue
            target = sg.tensors[op.outputs[0]]
            original = by_name[target.name]
            values = np.frombuffer(bytes(bytearray(plain.buffers[original.buffer].data)), np.float32).reshape(original.shape)
            q = np.frombuffer(bytes(bytearray(stored.buffers[source.buffer].data)), np.int8).reshape(source.shape)
            params = source.quantization
            shape = [1] * q.ndim
            shape[params.quantizedDimension] = -1
            step = np.asarray(params.scale, np.float32).reshape(shape)
            assert len(params.scale) == q.shape[params.quantizedDimension] and not any(params.zeroPoint)
            assert (np.abs(q * step - values) <= step / 2 + 1e-7).all(), target.name
            checked += 1
    assert checked >= 3
