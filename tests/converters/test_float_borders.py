"""A mixed file has no int8 round trips around data-movement ops between float ops (converters.float_borders)."""

from __future__ import annotations

import numpy as np

from ich_edge.runtime import flatbuffer as fb


def round_trips(payload: bytes) -> int:
    """Data-movement ops whose input comes from a QUANTIZE of a float tensor and whose outputs all go to DEQUANTIZE."""
    from converters.float_borders import DATA_MOVEMENT_OPS

    model = fb.unpack(payload)
    names = fb.operator_names(model)
    count = 0
    for sg in model.subgraphs:
        producer = {t: op for op in sg.operators for t in op.outputs}
        users: dict = {}
        for op in sg.operators:
            for t in op.inputs:
                users.setdefault(t, []).append(names[op.opcodeIndex])
        for op in sg.operators:
            if names[op.opcodeIndex] not in DATA_MOVEMENT_OPS:
                continue
            sources = [producer.get(t) for t in op.inputs if t >= 0]
            fed = any(s is not None and names[s.opcodeIndex] == "QUANTIZE"
                      and sg.tensors[s.inputs[0]].type == fb.schema().TensorType.FLOAT32 for s in sources)
            if fed and all(users.get(t) == ["DEQUANTIZE"] for t in op.outputs):
                count += 1
    return count


def _bilstm_nodes(graph: bytes) -> list:
    from converters.layers import LayerGroups

    return list(LayerGroups.of(graph).nodes["classify/bilstm"])


def _raw_mixed(graph: bytes) -> bytes:
    """TFLite's selective quantizer output with the recurrent layer denied (what converters.layers starts from)."""
    from tensorflow.lite.python.convert import mlir_quantize

    from ich_edge.training.keras import tf

    return bytes(mlir_quantize(graph, denylisted_nodes=_bilstm_nodes(graph), input_data_type=tf.float32,
                               output_data_type=tf.float32))


def _classify(payload: bytes, windows: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=payload, num_threads=1).get_signature_runner("classify")
    ((name, _),) = runner.get_input_details().items()
    return np.stack([next(iter(runner(**{name: w[None]}).values())) for w in windows])


def test_round_trips_go_and_the_head_computes_what_it_did(calibrated):
    from converters.float_borders import drop_round_trips
    from converters.layers import quantize
    from ich_edge.runtime.coverage import xnnpack_coverage

    graph, calibration = calibrated
    raw = _raw_mixed(graph)
    assert round_trips(raw) > 0  # what the quantizer leaves: the gate splits of the float recurrent layer
    cleaned, dropped = drop_round_trips(raw)
    assert round_trips(cleaned) == 0 and dropped >= 2 * round_trips(raw)
    assert round_trips(quantize(graph, _bilstm_nodes(graph), float_weights="float32")) == 0  # convert's path
    model = fb.unpack(cleaned)
    for sg in model.subgraphs:  # compacted: every tensor is used by an op or is a subgraph input/output
        used = {int(t) for op in sg.operators for t in list(op.inputs) + list(op.outputs) if t >= 0}
        assert used | {int(t) for t in sg.inputs} | {int(t) for t in sg.outputs} == set(range(len(sg.tensors)))
    before, after = _classify(raw, calibration.windows), _classify(cleaned, calibration.windows)
    assert np.abs(after - before).max() < 0.02, np.abs(after - before).max()  # rounding gone, nothing else
    assert xnnpack_coverage(cleaned)["classify"].not_delegated == xnnpack_coverage(raw)["classify"].not_delegated


def test_a_requantization_is_not_taken_for_a_float_border(calibrated):
    """QUANTIZE also rescales int8 -> int8: such an op's input is not float, and nothing is rewired."""
    from converters.float_borders import drop_round_trips
    from converters.layers import quantize

    graph, _ = calibrated
    integer = quantize(graph)  # all integer: every QUANTIZE inside reads int8 or the float input only
    payload, dropped = drop_round_trips(integer)
    assert round_trips(integer) == 0 and dropped == 0 and payload == integer
