"""The deployable graph: one ``tf.Module`` with ``encode`` and ``classify``, converted per recipe.

The CNN-LSTM is exported so that an app encodes each slice once:

* ``encode``: ``image (B, S, S, 3)`` float in [0, 1] -> ``features (B, F)``, B resizable;
* ``classify``: ``features (1, T, F)`` -> ``probabilities (1, T, 6)``.

``F`` is the encoder's width, or, for a wide encoder, the recurrent layer's gate inputs: its
input projection then runs once per slice in ``encode`` (:mod:`ich_edge.training.projection`).

Both are concrete functions of one ``tf.Module`` saved as a SavedModel with two
signatures, converted by ``TFLiteConverter.from_saved_model(signature_keys=[...])`` and
configured by a precision recipe (:mod:`converters.registry`).

``classify`` is *stateless*: the recurrent head is unrolled over the fixed window
(:mod:`ich_edge.training.stateless`), so no tensor keeps state between invocations and
LiteRT's CompiledModel, GPU accelerators and LiteRT.js run the file as it is.

Checks (:func:`check_graph`): builtin ops only (no Flex), no variable tensors in any
signature, and, where the encoder has BatchNormalization, BN folded into the convolutions
(no MUL in ``encode`` and exactly one ADD per residual Add layer).
"""

from __future__ import annotations

from pathlib import Path

from converters.recipe import ConvertOptions, Recipe
from ich_edge.errors import ConversionError
from ich_edge.quiet import native_output_silenced
from ich_edge.runtime import flatbuffer as fb
from ich_edge.runtime.description import custom_ops
from ich_edge.runtime.tflite_model import CLASSIFY, ENCODE
from ich_edge.training.keras import keras, tf
from ich_edge.training.projection import encode_tail, head_split
from ich_edge.training.stateless import stateless_head_fn

IMAGE, FEATURES, PROBABILITIES = "image", "features", "probabilities"


def deployable_module(encoder, head, window_slices: int, stateless: bool = True, split=None):
    """A ``tf.Module`` with the ``encode`` and ``classify`` functions of the deployed model.

    ``split`` (:func:`ich_edge.training.projection.head_split`, ``auto`` when None) says where
    ``encode`` ends: with the features, or with the recurrent layer's input projection.

    The Keras models are reached through the closure and only their variables are tracked:
    saving the Keras objects themselves would add every layer's traced call functions to the
    SavedModel (hundreds of functions that the converter then loads for nothing).
    ``stateless=False`` keeps the Keras head as it is (the fused, stateful LSTM): only for
    ``benchmarks/stateless_head.py``, which compares the two forms; convert refuses it.
    """
    size_px = int(encoder.input_shape[1])
    if split is None:
        split = head_split(head, int(encoder.output_shape[-1]), "auto" if stateless else "never")
    if split.projected and not stateless:
        raise ConversionError("the input projection moves into encode only with the stateless head")
    head_fn = stateless_head_fn(head, window_slices, split) if stateless else (lambda x: head(x, training=False))
    tail = encode_tail(split)

    class Deployable(tf.Module):
        def __init__(self):
            super().__init__(name="ich_edge_cnn_lstm")
            self.model_variables = list(encoder.variables) + list(head.variables)

        @tf.function(input_signature=[tf.TensorSpec([None, size_px, size_px, 3], tf.float32, name=IMAGE)])
        def encode(self, image):
            return {FEATURES: tail(encoder(image, training=False))}

        @tf.function(input_signature=[tf.TensorSpec([1, window_slices, split.classify_dim], tf.float32, name=FEATURES)])
        def classify(self, features):
            return {PROBABILITIES: head_fn(features)}

    return Deployable()


def save_deployable(encoder, head, window_slices: int, directory: str | Path, stateless: bool = True, split=None) -> Path:
    """Write the two-signature SavedModel to ``directory`` (a scratch folder); ``split`` as in :func:`deployable_module`."""
    module = deployable_module(encoder, head, window_slices, stateless, split)
    tf.saved_model.save(module, str(directory), signatures={ENCODE: module.encode, CLASSIFY: module.classify})
    return Path(directory)


def run_converter(saved_model_dir: str | Path, recipe: Recipe, options: ConvertOptions) -> bytes:
    """Convert the SavedModel with ``recipe``; :class:`ConversionError` says why it failed."""
    recipe.check_options(options)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[ENCODE, CLASSIFY])
    recipe.configure(converter, options)
    try:
        with native_output_silenced():  # the quantizer's "fully_quantize: 0, ..." line (--debug shows it)
            return bytes(converter.convert())
    except Exception as err:  # the converter raises ConverterError, RuntimeError or ValueError
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        flex = "select_tf_ops" in str(err).lower() or "flex" in str(err).lower()
        hint = (
            "the model needs TensorFlow (Flex) ops, which ich-edge does not allow; keep to builtin layers"
            if flex
            else "run with --debug for the converter's full message"
        )
        raise ConversionError(f"{recipe.name} conversion failed: {first} ({hint})") from err


def unclip_lstm_cells(tflite_bytes: bytes) -> bytes:
    """Set ``cell_clip`` of every UNIDIRECTIONAL_SEQUENCE_LSTM to 0 (no clipping), as in Keras.

    Only the fused, stateful form has this op; ``benchmarks/stateless_head.py`` builds that
    form to compare it with the stateless one that ``convert`` writes.

    The converter fuses a Keras LSTM with a hard-coded ``cell_clip`` of 10, which Keras never
    applies: a trained head whose cell state exceeds 10 (22 on the demo model) then differs
    from Keras by up to 4e-4 in fp32. Integer kernels clip to their int16 cell range anyway.
    """
    import flatbuffers

    model = fb.unpack(tflite_bytes)
    names = fb.operator_names(model)
    changed = False
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if names[op.opcodeIndex] == "UNIDIRECTIONAL_SEQUENCE_LSTM" and op.builtinOptions.cellClip:
                op.builtinOptions.cellClip = 0.0
                changed = True
    if not changed:
        return tflite_bytes
    return fb.pack(model, flatbuffers.Builder(len(tflite_bytes) + 1024))


def count_layers(model, layer_type) -> int:
    """Layers of ``layer_type`` in ``model``, looking inside TFMOT QuantizeWrapper layers."""
    return sum(isinstance(getattr(layer, "layer", layer), layer_type) for layer in model.layers)


def unfoldable_batch_norms(encoder) -> int:
    """BatchNormalization layers of ``encoder`` that no convolution before them can absorb.

    BN folds into a Conv2D/DepthwiseConv2D/SeparableConv2D/Dense right before it whose
    activation is linear; after an activation (Conv -> ReLU -> BN, common in older code) it
    stays a per-channel multiply-add, which is exact in float and accepted at every precision.
    """
    foldable = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense")
    count = 0
    for layer in encoder.layers:
        if not isinstance(getattr(layer, "layer", layer), keras.layers.BatchNormalization):
            continue
        inbound = [getattr(l, "layer", l) for node in layer._inbound_nodes for l in tf.nest.flatten(node.inbound_layers)]
        before = inbound[0] if len(inbound) == 1 else None
        linear = getattr(getattr(before, "activation", None), "__name__", "linear") == "linear"
        if not (before is not None and type(before).__name__ in foldable and linear):
            count += 1
    return count


def check_graph(summary: dict, encoder) -> None:
    """Builtin ops only, no variable tensors, BatchNormalization folded; :class:`ConversionError` if not."""
    custom = custom_ops(summary)
    if custom:
        raise ConversionError(f"the converted model needs non-builtin ops {custom} (Flex/SELECT_TF_OPS are not allowed)")
    stateful = {sig: info["variable_tensors"] for sig, info in summary.items() if info.get("variable_tensors")}
    if stateful:
        raise ConversionError(
            f"the converted model keeps state in variable tensors {stateful}, which LiteRT's CompiledModel, "
            "GPU accelerators and LiteRT.js refuse; classify must be converted from the stateless head "
            "(ich_edge.training.stateless)"
        )
    if not count_layers(encoder, keras.layers.BatchNormalization):
        return
    encode_ops = summary[ENCODE]["ops"]
    adds = encode_ops.get("ADD", {}).get("count", 0)
    muls = encode_ops.get("MUL", {}).get("count", 0)
    residual_adds = count_layers(encoder, keras.layers.Add)
    kept = unfoldable_batch_norms(encoder)  # BN after an activation: one float multiply-add each
    if muls > kept or not residual_adds <= adds <= residual_adds + kept:
        raise ConversionError(
            f"BatchNormalization was not folded into the convolutions: encode has {encode_ops.get('MUL', {}).get('count', 0)} "
            f"MUL and {adds} ADD ops for {residual_adds} residual additions; keep the conv -> BN -> ReLU order"
        )
