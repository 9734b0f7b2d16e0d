"""What a backend took of a model, and how much arithmetic the model does, per signature.

Runtime tier (numpy, flatbuffers and ai-edge-litert). Two questions a benchmark must answer
besides "how fast":

* **delegate coverage**: how many nodes of each signature XNNPACK (or another delegate)
  actually runs, and which op types stay on the builtin kernels. The Python interpreter
  lists the nodes of the first subgraph only, so each signature is cut out into a
  one-subgraph model (:func:`single_signature_model`) and loaded on its own; after
  ``allocate_tensors`` every ``DELEGATE`` node stands for a partition, whose members are
  found by walking back from its outputs to its inputs (:func:`delegated_op_indices`).
* **multiply-accumulates**: counted from the tensor shapes of conv, depthwise conv, fully
  connected and batch matmul ops, and the fused LSTM ops of older stateful files
  (:func:`signature_macs`; ``convert`` writes the head unrolled now); element-wise ops
  are not counted (they are memory-bound, not MAC-bound).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ich_edge.errors import ModelError
from ich_edge.runtime import flatbuffer as fb


def read_model(model_bytes: bytes):
    """The flatbuffer object tree (``ModelT``) of a ``.tflite`` file's bytes (:func:`ich_edge.runtime.flatbuffer.unpack`)."""
    return fb.unpack(model_bytes)


def op_types(model, subgraph_index: int) -> list[str]:
    """Builtin op name of each operator of a subgraph, in order (e.g. ``CONV_2D``)."""
    names = fb.operator_names(model)
    return [names[op.opcodeIndex] for op in fb.seq(model.subgraphs[subgraph_index].operators)]


#: Ops that call other subgraphs; a signature using them cannot be cut out on its own.
CONTROL_FLOW_OPS = frozenset({"WHILE", "IF", "CALL_ONCE", "CALL", "STABLEHLO_WHILE", "STABLEHLO_CASE"})


def single_signature_model(model_bytes: bytes, signature_key: str) -> bytes:
    """A copy of the model holding only ``signature_key``'s subgraph (as subgraph 0).

    Buffers (weights) are kept as they are. Raises :class:`ModelError` when the signature
    calls other subgraphs (control flow), which this cut would break.
    """
    model = read_model(model_bytes)
    index = fb.signature_subgraphs(model).get(signature_key)
    if index is None:
        raise ModelError(f"the model has no signature {signature_key!r}; it has {sorted(fb.signature_subgraphs(model))}")
    flow = CONTROL_FLOW_OPS.intersection(op_types(model, index))
    if flow:
        raise ModelError(f"signature {signature_key!r} uses {sorted(flow)}, which call other subgraphs")
    sig = next(s for s in model.signatureDefs if fb.name(s.signatureKey) == signature_key)
    sig.subgraphIndex = 0
    model.subgraphs = [model.subgraphs[index]]
    model.signatureDefs = [sig]
    return fb.pack(model)


def delegated_op_indices(ops: list[dict]) -> set[int]:
    """Indices of the original nodes that ``DELEGATE`` nodes replaced.

    ``ops`` is ``Interpreter._get_ops_details()`` after ``allocate_tensors``: the original
    nodes followed by one ``DELEGATE`` node per partition. A partition's members are the
    producers reached walking back from the delegate node's outputs, stopping at its inputs.
    """
    producer: dict[int, int] = {}
    for op in ops:
        if op["op_name"] != "DELEGATE":
            for tensor in op["outputs"]:
                producer[int(tensor)] = int(op["index"])
    by_index = {int(op["index"]): op for op in ops}
    taken: set[int] = set()
    for op in ops:
        if op["op_name"] != "DELEGATE":
            continue
        boundary = {int(t) for t in op["inputs"]}
        stack = [int(t) for t in op["outputs"]]
        seen: set[int] = set()
        while stack:
            tensor = stack.pop()
            if tensor in seen or tensor in boundary or tensor not in producer:
                continue
            seen.add(tensor)
            node = producer[tensor]
            if node not in taken:
                taken.add(node)
                stack.extend(int(t) for t in by_index[node]["inputs"] if int(t) >= 0)
    return taken


@dataclass(frozen=True)
class SignatureCoverage:
    """Nodes of one signature and how many a delegate took."""

    signature: str
    total_nodes: int
    delegated_nodes: int
    partitions: int
    not_delegated: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "total_nodes": self.total_nodes,
            "delegated_nodes": self.delegated_nodes,
            "partitions": self.partitions,
            "not_delegated": dict(self.not_delegated),
        }


def xnnpack_coverage(model_bytes: bytes, num_threads: int = 1) -> dict[str, SignatureCoverage]:
    """Per signature: total nodes, nodes XNNPACK took, and the op types it left (with counts)."""
    from ich_edge.runtime.interpreter import interpreter_module

    module = interpreter_module()
    coverage = {}
    for key in fb.signature_subgraphs(read_model(model_bytes)):
        interpreter = module.Interpreter(
            model_content=single_signature_model(model_bytes, key), num_threads=num_threads
        )
        interpreter.allocate_tensors()  # applies the default (XNNPACK) delegate
        # Private but stable since TF 2.x: the only Python view of the nodes after delegation.
        ops = interpreter._get_ops_details()
        original = [op for op in ops if op["op_name"] != "DELEGATE"]
        taken = delegated_op_indices(ops)
        left = Counter(op["op_name"] for op in original if int(op["index"]) not in taken)
        coverage[key] = SignatureCoverage(
            signature=key,
            total_nodes=len(original),
            delegated_nodes=len(taken),
            partitions=len(ops) - len(original),
            not_delegated=dict(sorted(left.items())),
        )
    return coverage


def builtin_coverage(model_bytes: bytes) -> dict[str, SignatureCoverage]:
    """Coverage of the reference kernels: every node on the builtin kernels, none delegated."""
    model = read_model(model_bytes)
    out = {}
    for key, index in fb.signature_subgraphs(model).items():
        names = op_types(model, index)
        out[key] = SignatureCoverage(key, len(names), 0, 0, dict(sorted(Counter(names).items())))
    return out


# --- multiply-accumulates -------------------------------------------------------------------


def _shape(subgraph, tensor_index: int) -> tuple[int, ...] | None:
    if tensor_index is None or tensor_index < 0:
        return None
    shape = subgraph.tensors[tensor_index].shape
    return tuple(int(d) for d in shape) if shape is not None else ()


def _lstm_macs(subgraph, op, weight_slots: tuple[int, ...], recurrent_slots: tuple[int, ...], steps: int) -> int:
    total = 0
    for slot in weight_slots + recurrent_slots:
        shape = _shape(subgraph, op.inputs[slot]) if slot < len(op.inputs) else None
        if shape:
            total += int(np.prod(shape))
    return steps * total


def op_macs(model, subgraph_index: int, op_index: int) -> int | None:
    """Multiply-accumulates of one operator (batch as stored: 1 for a dynamic batch).

    None for op types this count does not cover (element-wise ops, pooling, reshapes).
    """
    subgraph = model.subgraphs[subgraph_index]
    op = subgraph.operators[op_index]
    name = op_types(model, subgraph_index)[op_index]
    inputs = list(op.inputs)
    out = _shape(subgraph, op.outputs[0]) if len(op.outputs) else None
    if name == "CONV_2D":
        co, kh, kw, ci = _shape(subgraph, inputs[1])
        return int(np.prod(out)) * kh * kw * ci
    if name == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = _shape(subgraph, inputs[1])
        return int(np.prod(out)) * kh * kw
    if name == "FULLY_CONNECTED":
        units, depth = _shape(subgraph, inputs[1])
        return int(np.prod(out)) // max(units, 1) * units * depth
    if name == "BATCH_MATMUL":
        a = _shape(subgraph, inputs[0])
        transpose_a = bool(getattr(op.builtinOptions, "adjX", False))
        return int(np.prod(out)) * (a[-2] if transpose_a else a[-1])
    if name == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        data = _shape(subgraph, inputs[0])
        return _lstm_macs(subgraph, op, (1, 2, 3, 4), (5, 6, 7, 8, 16), int(np.prod(data[:-1])))
    if name == "BIDIRECTIONAL_SEQUENCE_LSTM":
        data = _shape(subgraph, inputs[0])
        steps = int(np.prod(data[:-1]))
        forward = _lstm_macs(subgraph, op, (1, 2, 3, 4), (5, 6, 7, 8, 16), steps)
        backward = _lstm_macs(subgraph, op, (18, 19, 20, 21), (22, 23, 24, 25, 33), steps)
        return forward + backward
    return None


#: Op types that move or rescale data and carry no multiply-accumulates worth counting.
NO_MAC_OPS = frozenset({
    "ADD", "SUB", "MUL", "DIV", "RELU", "RELU6", "RELU_N1_TO_1", "LOGISTIC", "TANH", "HARD_SWISH",
    "QUANTIZE", "DEQUANTIZE", "CAST", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CONCATENATION",
    "REVERSE_V2", "TRANSPOSE", "PAD", "PADV2", "MEAN", "AVERAGE_POOL_2D", "MAX_POOL_2D",
    "STRIDED_SLICE", "SLICE", "GATHER", "SHAPE", "PACK", "UNPACK", "SPLIT", "SPLIT_V", "FILL",
    "MAXIMUM", "MINIMUM", "SOFTMAX", "SUM",
})


def signature_macs(model_bytes: bytes) -> dict[str, dict]:
    """Per signature: ``macs`` at the stored (batch 1) shapes, MACs per op type, uncounted op types."""
    model = read_model(model_bytes)
    out = {}
    for key, index in fb.signature_subgraphs(model).items():
        by_type: Counter = Counter()
        uncounted: Counter = Counter()
        for op_index, name in enumerate(op_types(model, index)):
            macs = op_macs(model, index, op_index)
            if macs is None:
                if name not in NO_MAC_OPS:
                    uncounted[name] += 1
                continue
            by_type[name] += macs
        out[key] = {
            "macs": int(sum(by_type.values())),
            "macs_by_op": dict(by_type.most_common()),
            "uncounted_ops": dict(sorted(uncounted.items())),
        }
    return out
