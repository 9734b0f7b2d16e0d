"""A tiny two-signature ``.tflite`` for predict/assets/reference-client tests, built without TensorFlow.

Written with the flatbuffer schema that ships with ai-edge-litert, with the same interface
as a converted ich-edge model (signatures ``encode`` and ``classify``, an embedded
description) and integer I/O like the qat-int8 model an app gets:

* ``encode``: ``image`` uint8 ``(B, S, S, 3)`` (scale 1/255) -> DEQUANTIZE -> MEAN over the
  image -> FULLY_CONNECTED -> QUANTIZE -> ``features`` int8 ``(B, 4)``: the mean of each
  window channel in [0, 1], and their sum;
* ``classify``: ``features`` int8 ``(1, T, 4)`` -> DEQUANTIZE -> FULLY_CONNECTED -> LOGISTIC
  -> QUANTIZE -> ``probabilities`` uint8 ``(1, T, 6)`` (scale 1/256).

The weights are chosen by hand so the output means something: ``any`` and ``subdural``
rise with the mean of the brain and subdural window channels (a slice whose brain is
filled with 75 HU is "positive", one with 30 HU brain is not), the other subtypes stay low. ``quantized_io=False`` gives float32 I/O.
"""

from __future__ import annotations

import numpy as np

from ich_edge import LABELS

FEATURE_DIM = 4
FEATURE_SCALE, FEATURE_ZERO_POINT = 4.0 / 255.0, -128
PROBABILITY_SCALE, PROBABILITY_ZERO_POINT = 1.0 / 256.0, 0
#: logits = W @ features + b, per label (LABELS order). features: brain, subdural, bone, sum.
CLASSIFY_WEIGHTS = np.array(
    [
        [0.0, 0.0, 0.0, 0.0],  # epidural
        [2.0, 0.0, 0.0, 0.0],  # intraparenchymal
        [0.0, 0.0, 0.0, 0.0],  # intraventricular
        [0.0, 0.0, 0.0, 0.0],  # subarachnoid
        [0.0, 40.0, 0.0, 0.0],  # subdural
        [24.0, 0.0, 0.0, 0.0],  # any
    ],
    np.float32,
)
CLASSIFY_BIAS = np.array([-6.0, -4.0, -6.0, -6.0, -12.6, -10.8], np.float32)


def default_description(size_px: int, window: int, stride: int, precision: str, thresholds: dict | None) -> dict:
    """A description with the fields ``ich-edge convert`` writes (a subset is enough here)."""
    return {
        "format": "ich-edge-model/1",
        "model_version": "tiny-test",
        "precision": precision,
        "labels": list(LABELS),
        "preprocessing": {
            "windows_hu": [[40.0, 80.0], [80.0, 200.0], [600.0, 2800.0]],
            "window_names": ["brain", "subdural", "bone"],
            "input_size_px": size_px,
            "resize_method": "area",
        },
        "sequence": {"window_slices": window, "stride_slices": stride},
        "thresholds": thresholds
        or {"specificity": 0.9, **{level: {label: 0.5 for label in LABELS} for level in ("slice", "study")}},
        "training_data": {"synthetic": True, "studies": 0, "note": "hand-set weights for tests"},
    }


def tiny_model_bytes(
    size_px: int = 16,
    window: int = 4,
    stride: int = 2,
    quantized_io: bool = True,
    precision: str = "qat-int8",
    thresholds: dict | None = None,
    description: dict | None = None,
) -> bytes:
    """The model file's bytes; ``description=None`` embeds :func:`default_description`."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    from ich_edge.runtime.description import embed_description

    buffers = [fb.BufferT()]
    codes: dict[int, int] = {}
    B, T = fb.BuiltinOperator, fb.TensorType

    def const(array) -> int:
        buf = fb.BufferT()
        buf.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
        buffers.append(buf)
        return len(buffers) - 1

    def tensor(tensors, name, shape, kind=T.FLOAT32, data=None, signature=None, quant=None):
        t = fb.TensorT()
        t.name, t.shape, t.type, t.shapeSignature = name, list(shape), kind, signature
        t.buffer = 0 if data is None else const(data)
        if quant is not None:
            q = fb.QuantizationParametersT()
            q.scale, q.zeroPoint = [float(quant[0])], [int(quant[1])]
            t.quantization = q
        tensors.append(t)
        return len(tensors) - 1

    def op(code, inputs, outputs, options_type=0, options=None):
        codes.setdefault(code, len(codes))
        o = fb.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = codes[code], list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = options_type, options
        return o

    def fc(inputs, outputs, keep_dims=False):
        options = fb.FullyConnectedOptionsT()
        options.keepNumDims = keep_dims
        return op(B.FULLY_CONNECTED, inputs, outputs, fb.BuiltinOptions.FullyConnectedOptions, options)

    S, F, L = size_px, FEATURE_DIM, len(LABELS)
    enc = fb.SubGraphT()
    enc.tensors, enc.operators, enc.name = [], [], "encode"
    if quantized_io:
        image = tensor(enc.tensors, "image", [1, S, S, 3], T.UINT8, signature=[-1, S, S, 3], quant=(1 / 255, 0))
        unit = tensor(enc.tensors, "unit", [1, S, S, 3], signature=[-1, S, S, 3])
        enc.operators.append(op(B.DEQUANTIZE, [image], [unit]))
    else:
        image = unit = tensor(enc.tensors, "image", [1, S, S, 3], signature=[-1, S, S, 3])
    axes = tensor(enc.tensors, "axes", [2], T.INT32, data=np.array([1, 2], np.int32))
    pooled = tensor(enc.tensors, "pooled", [1, 3], signature=[-1, 3])
    w1 = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], np.float32)
    w1_t = tensor(enc.tensors, "fc1/w", [F, 3], data=w1)
    b1_t = tensor(enc.tensors, "fc1/b", [F], data=np.zeros(F, np.float32))
    feat = tensor(enc.tensors, "features_float" if quantized_io else "features", [1, F], signature=[-1, F])
    enc.operators += [
        op(B.MEAN, [unit, axes], [pooled], fb.BuiltinOptions.ReducerOptions, fb.ReducerOptionsT()),
        fc([pooled, w1_t, b1_t], [feat]),
    ]
    features_out = feat
    if quantized_io:
        features_out = tensor(enc.tensors, "features", [1, F], T.INT8, signature=[-1, F],
                              quant=(FEATURE_SCALE, FEATURE_ZERO_POINT))
        enc.operators.append(op(B.QUANTIZE, [feat], [features_out]))
    enc.inputs, enc.outputs = [image], [features_out]

    cls = fb.SubGraphT()
    cls.tensors, cls.operators, cls.name = [], [], "classify"
    if quantized_io:
        window_in = tensor(cls.tensors, "window", [1, window, F], T.INT8, quant=(FEATURE_SCALE, FEATURE_ZERO_POINT))
        window_f = tensor(cls.tensors, "window_float", [1, window, F])
        cls.operators.append(op(B.DEQUANTIZE, [window_in], [window_f]))
    else:
        window_in = window_f = tensor(cls.tensors, "window", [1, window, F])
    w2 = tensor(cls.tensors, "fc2/w", [L, F], data=CLASSIFY_WEIGHTS)
    b2 = tensor(cls.tensors, "fc2/b", [L], data=CLASSIFY_BIAS)
    logits = tensor(cls.tensors, "logits", [1, window, L])
    probs = tensor(cls.tensors, "probabilities_float" if quantized_io else "probabilities", [1, window, L])
    cls.operators += [fc([window_f, w2, b2], [logits], keep_dims=True), op(B.LOGISTIC, [logits], [probs])]
    probs_out = probs
    if quantized_io:
        probs_out = tensor(cls.tensors, "probabilities", [1, window, L], T.UINT8,
                           quant=(PROBABILITY_SCALE, PROBABILITY_ZERO_POINT))
        cls.operators.append(op(B.QUANTIZE, [probs], [probs_out]))
    cls.inputs, cls.outputs = [window_in], [probs_out]

    def signature(key, index, inputs, outputs):
        sig = fb.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex, sig.inputs, sig.outputs = key, index, [], []
        for target, pairs in ((sig.inputs, inputs), (sig.outputs, outputs)):
            for name, tensor_index in pairs:
                entry = fb.TensorMapT()
                entry.name, entry.tensorIndex = name, tensor_index
                target.append(entry)
        return sig

    model = fb.ModelT()
    model.version, model.description = 3, "ich-edge tiny app test model"
    model.subgraphs, model.buffers, model.operatorCodes = [enc, cls], buffers, []
    for code in sorted(codes, key=codes.get):
        entry = fb.OperatorCodeT()
        entry.builtinCode, entry.deprecatedBuiltinCode = code, min(code, 127)
        model.operatorCodes.append(entry)
    model.signatureDefs = [
        signature("encode", 0, [("image", image)], [("features", features_out)]),
        signature("classify", 1, [("features", window_in)], [("probabilities", probs_out)]),
    ]
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    if description is None:
        description = default_description(size_px, window, stride, precision, thresholds)
    return embed_description(bytes(builder.Output()), description)
