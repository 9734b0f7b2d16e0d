"""Remove the int8 round trips that TFLite's selective quantizer leaves around data-movement ops.

With a layer kept float (:func:`converters.layers.quantize`, a deny list of nodes), the MLIR
quantizer still quantizes ops that only move data (``SPLIT``, ``UNPACK``, ``STRIDED_SLICE``,
...) between float ops: ``float -> QUANTIZE -> SPLIT (int8) -> DEQUANTIZE -> float``. In the
demo model's unrolled recurrent head that is 215 of its 628 ops (every gate split, every time
step): they cost a requantization error of up to half a step per value, run time at every
window, and file size (a tensor with quantization parameters per border).
:func:`drop_round_trips` runs such an op on the float tensor directly, drops its QUANTIZE
and DEQUANTIZE ops and the tensors nothing uses any more. The op computes what it computed
before, without the rounding; the search (:mod:`converters.mixed`) judges the files as
written, round trips removed.
"""

from __future__ import annotations

from ich_edge.runtime import flatbuffer as fb

#: Ops that move or select values without arithmetic: their float form is exact.
DATA_MOVEMENT_OPS = frozenset({"SPLIT", "SPLIT_V", "UNPACK", "STRIDED_SLICE", "SLICE", "RESHAPE", "SQUEEZE",
                               "EXPAND_DIMS", "REVERSE_V2", "TRANSPOSE", "GATHER"})


def _uses(subgraph) -> tuple[dict, dict]:
    producer, consumers = {}, {}
    for index, op in enumerate(subgraph.operators):
        for t in op.outputs:
            producer[t] = index
        for t in op.inputs:
            if t >= 0:
                consumers.setdefault(t, []).append(index)
    return producer, consumers


def _data_input(model, subgraph, op) -> int | None:
    """The op's one non-constant input (the others are axes, shapes, begin/end constants), or None."""
    live = [slot for slot, t in enumerate(op.inputs) if t >= 0 and model.buffers[subgraph.tensors[t].buffer].data is None]
    return live[0] if len(live) == 1 else None


def _rewire(model, subgraph, names, producer, consumers, index) -> set[int] | None:
    """Rewire op ``index`` to float when it sits in a round trip; the dropped op indices, else None."""
    op = subgraph.operators[index]
    slot = _data_input(model, subgraph, op)
    if slot is None:
        return None
    quantized = op.inputs[slot]
    quantize = producer.get(quantized)
    if quantize is None or names[subgraph.operators[quantize].opcodeIndex] != "QUANTIZE":
        return None
    outputs = set(subgraph.outputs)
    dequantizes = []
    for t in op.outputs:
        users = consumers.get(t, [])
        if t in outputs or len(users) > 1 or any(names[subgraph.operators[u].opcodeIndex] != "DEQUANTIZE" for u in users):
            return None
        dequantizes.append(users[0] if users else None)
    float_input = subgraph.operators[quantize].inputs[0]
    if subgraph.tensors[float_input].type != fb.schema().TensorType.FLOAT32:  # a requantization (int8 -> int8)
        return None
    dropped = set()
    op.inputs = [float_input if k == slot else t for k, t in enumerate(op.inputs)]
    new_outputs = []
    for t, user in zip(op.outputs, dequantizes):
        if user is None:  # an output nothing reads: it becomes a float tensor
            tensor = subgraph.tensors[t]
            tensor.type, tensor.quantization = subgraph.tensors[float_input].type, None
            new_outputs.append(t)
        else:
            new_outputs.append(subgraph.operators[user].outputs[0])
            dropped.add(user)
    op.outputs = new_outputs
    if consumers.get(quantized) == [index]:
        dropped.add(quantize)
    return dropped


def _compact_tensors(model, subgraph_index: int) -> None:
    """Drop the tensors of a subgraph that no op, subgraph input/output or signature refers to."""
    subgraph = model.subgraphs[subgraph_index]
    used = {int(t) for t in subgraph.inputs} | {int(t) for t in subgraph.outputs}
    for op in subgraph.operators:
        intermediates = [] if op.intermediates is None else list(op.intermediates)
        used.update(int(t) for t in list(op.inputs) + list(op.outputs) + intermediates if t >= 0)
    keep = sorted(used)
    remap = {old: new for new, old in enumerate(keep)}
    subgraph.tensors = [subgraph.tensors[i] for i in keep]
    for op in subgraph.operators:
        op.inputs = [remap[int(t)] if t >= 0 else int(t) for t in op.inputs]
        op.outputs = [remap[int(t)] for t in op.outputs]
        if op.intermediates is not None:
            op.intermediates = [remap[int(t)] for t in op.intermediates]
    subgraph.inputs = [remap[int(t)] for t in subgraph.inputs]
    subgraph.outputs = [remap[int(t)] for t in subgraph.outputs]
    for signature in fb.seq(model.signatureDefs):
        if signature.subgraphIndex == subgraph_index:
            for entry in fb.seq(signature.inputs) + fb.seq(signature.outputs):
                entry.tensorIndex = remap[entry.tensorIndex]


def drop_round_trips(model_bytes: bytes) -> tuple[bytes, int]:
    """``(new model bytes, ops dropped)``: data-movement ops between float ops run in float (module docstring)."""
    model = fb.unpack(model_bytes)
    names = fb.operator_names(model)
    total = 0
    for subgraph_index, subgraph in enumerate(model.subgraphs):
        dropped: set[int] = set()
        producer, consumers = _uses(subgraph)
        for index, op in enumerate(subgraph.operators):
            if names[op.opcodeIndex] in DATA_MOVEMENT_OPS and index not in dropped:
                gone = _rewire(model, subgraph, names, producer, consumers, index)
                if gone:
                    dropped |= gone
                    producer, consumers = _uses(subgraph)
        if dropped:
            subgraph.operators = [op for k, op in enumerate(subgraph.operators) if k not in dropped]
            _compact_tensors(model, subgraph_index)
            total += len(dropped)
    if not total:
        return model_bytes, 0
    return fb.pack(model), total
