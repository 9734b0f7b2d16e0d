"""Split a user's CNN-LSTM into ich-edge's slice encoder and sequence head (``ich-edge import``).

Two shapes are understood:

* a window model ``(B, T, H, W, C) -> (B, T, K)`` or ``(B, K)``: leading TimeDistributed
  layers (one wrapping a sub-model, or one per layer as Sequential users write it) form
  the per-slice encoder; the layers after them (recurrent, dense) form the head;
* a per-slice model ``(B, H, W, C) -> (B, K)``: its trailing vector layers (Dense,
  Dropout, activations) form the head, applied to every slice of a window.

The result is re-assembled in ich-edge's canonical layout (:func:`model.build_cnn_lstm`):
``encode_slices`` (TimeDistributed of ``slice_encoder``) then ``sequence_head``, whose output
is always ``(B, T, K)``: the model's K labels (all six, or the subset ``--output-labels`` names) in
ich-edge's label order (:func:`ich_edge.labels.canonical_order`). The encoder takes the standard
``(S, S, 3)`` [0, 1] input; a fixed 1x1 convolution ``input_adapter`` maps it to what the
model was trained on (:class:`ich_edge.transforms.ModelInput`). A head that returns one
vector per window ends in ``RepeatVector(T)`` so each slice of the window gets it.
The layers themselves (and so their weights) are the user's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ich_edge import LABELS
from ich_edge.errors import ConfigError, LabelsError, ModelError
from ich_edge.labels import canonical_order
from ich_edge.training.importer.config import BACKGROUND
from ich_edge.training.keras import keras
from ich_edge.training.model import ENCODER_NAME, HEAD_NAME
from ich_edge.transforms import ModelInput, PreprocessConfig

ACROSS_SLICES = ("Conv3D", "ConvLSTM2D", "ConvLSTM1D", "ConvLSTM3D", "MaxPooling3D", "AveragePooling3D", "Conv3DTranspose")
VECTOR_LAYERS = ("Dense", "Dropout", "Activation", "Softmax", "ReLU", "LeakyReLU", "ELU", "PReLU", "BatchNormalization")
ELEMENTWISE = ("Dropout", "Activation", "RepeatVector")
#: Layers that are the identity at inference: left out of the split wherever they stand.
INFERENCE_NOOPS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                   "GaussianDropout", "AlphaDropout", "ActivityRegularization")
RECURRENT = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "simple_rnn"}
ADAPTER_NAME, REPEAT_NAME, SELECT_NAME = "input_adapter", "repeat_to_slices", "drop_background"


@dataclass(frozen=True)
class Split:
    """The canonical encoder and head, and what the import learned about the model."""

    encoder: object
    head: object
    kind: str  # "window" or "slice"
    window_slices: int
    input_size_px: int
    feature_dim: int
    rnn: str
    per_window_output: bool
    activation: str
    file_labels: tuple[str, ...]
    check_max_abs_diff: float = 0.0
    recurrent_layers: int = 0
    bidirectional: bool = False
    verification: tuple = ()


def _all_layers(model):
    for layer in model.layers:
        yield layer
        inner = getattr(layer, "layer", None)
        if inner is not None:
            yield inner
            if hasattr(inner, "layers"):
                yield from _all_layers(inner)
        elif hasattr(layer, "layers"):
            yield from _all_layers(layer)
        for sub in (getattr(layer, "forward_layer", None), getattr(layer, "backward_layer", None)):
            if sub is not None:
                yield sub


def _chain(model) -> list:
    """The model's layers as a chain (each one feeds the next); ModelError if it branches."""
    layers = [l for l in model.layers if type(l).__name__ != "InputLayer"]
    if isinstance(model, keras.Sequential):
        return [l for l in layers if type(l).__name__ not in INFERENCE_NOOPS]
    previous = model.inputs[0]
    for layer in layers:
        if len(layer._inbound_nodes) != 1 or layer.input is not previous:
            raise ModelError(
                f"layer {layer.name!r} does not take the previous layer's output: import splits window models whose "
                "layers form a chain (branches are fine inside one TimeDistributed sub-model)"
            )
        previous = layer.output
    return [l for l in layers if type(l).__name__ not in INFERENCE_NOOPS]  # identity at inference


def _check_layers(model) -> None:
    for layer in _all_layers(model):
        kind = type(layer).__name__
        if kind in ACROSS_SLICES:
            raise ModelError(
                f"layer {layer.name!r} is a {kind}, which mixes neighbouring slices inside the network; ich-edge "
                "deploys a per-slice 2-D encoder plus a recurrent head: replace it with TimeDistributed 2-D layers"
            )
        if getattr(layer, "stateful", False):
            raise ModelError(f"layer {layer.name!r} is stateful; save the model with stateful=False")


def _adapter(x, model_input: ModelInput, preprocess: PreprocessConfig):
    if model_input.is_identity:
        return x
    matrix, offset = model_input.affine(preprocess)
    conv = keras.layers.Conv2D(len(model_input.channels), 1, name=ADAPTER_NAME, trainable=False)
    y = conv(x)
    conv.set_weights([matrix.reshape(1, 1, *matrix.shape), offset])
    return y


def _replay(x, body):
    """Call ``body`` (a list of layers, or a flat sub-model) on ``x`` without nesting models."""
    if isinstance(body, list):
        for layer in body:
            x = layer(x)
        return x
    if any(hasattr(l, "layers") for l in body.layers):
        raise ModelError(f"the sub-model {body.name!r} inside TimeDistributed holds another model; flatten it first")
    if isinstance(body, keras.Sequential):
        return _replay(x, list(body.layers))
    import tensorflow as tf

    new = {id(body.inputs[0]): x}
    for layer in body.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if len(layer._inbound_nodes) != 1:
            raise ModelError(f"layer {layer.name!r} of {body.name!r} is used {len(layer._inbound_nodes)} times; import takes layers used once")
        node = layer._inbound_nodes[0]
        args, kwargs = tf.nest.map_structure(lambda t: new.get(id(t), t), (node.call_args, node.call_kwargs))
        outputs = layer(*args, **kwargs)
        for old, fresh in zip(tf.nest.flatten(node.outputs), tf.nest.flatten(outputs)):
            new[id(old)] = fresh
    return new[id(body.outputs[0])]


def _final_activation(head_layers) -> tuple[str, object]:
    """``(activation name, the Dense layer that makes the outputs)``."""
    activation = None
    for layer in reversed(head_layers):
        if type(layer).__name__ == "TimeDistributed":  # TimeDistributed(Dense) after return_sequences=True
            layer = layer.layer
        kind = type(layer).__name__
        if kind == "Dense":
            name = keras.activations.serialize(layer.activation)
            name = name if isinstance(name, str) else str(name.get("class_name", name))
            return (activation or name), layer
        if kind == "Softmax":
            activation = activation or "softmax"
        elif kind == "Activation":
            name = keras.activations.serialize(layer.activation)
            activation = activation or (name if isinstance(name, str) else str(name))
        elif kind not in ELEMENTWISE:
            break
    raise ModelError("the model does not end in a Dense layer (optionally followed by an activation); "
                     "ich-edge import needs a classifier Dense(K) with a sigmoid")


def _map_labels(dense, activation: str, k: int, labels: tuple[str, ...] | None, softmax_ok: bool):
    """Check the output and put ``dense``'s columns into ich-edge's label order (of the labels it has).

    Returns ``(file_labels, select)``: ``select`` is None when the columns were permuted in
    place (exact), else the file columns to keep in order (a declared background class:
    its column is dropped AFTER the activation, by :func:`_select_layer`).
    """
    file_labels = tuple(labels) if labels else LABELS
    background = BACKGROUND in file_labels
    if activation == "softmax" and not background and not (labels and softmax_ok):
        raise ConfigError(
            f"the model ends in a softmax over {k} classes, but hemorrhage subtypes are not exclusive (a study can "
            "have several, and 'any' overlaps all): retrain with sigmoid outputs; for a softmax whose first class "
            "is 'no bleed' pass --output-labels background,any (the background column is dropped); else pass --output-labels "
            "naming each class and --softmax-ok to accept softmax scores as per-label probabilities"
        )
    if activation not in ("sigmoid", "softmax"):
        raise ConfigError(f"the model's output activation is {activation!r}, not sigmoid; add a sigmoid to the last Dense")
    if len(file_labels) != k:
        raise ConfigError(f"the model has {k} outputs but --output-labels names {len(file_labels)}: {', '.join(file_labels)}")
    try:
        order = list(output_columns(file_labels))
    except LabelsError as err:
        raise ConfigError(f"--output-labels: {err}") from err
    if background:
        return file_labels, order
    kernel, *bias = dense.get_weights()
    dense.set_weights([kernel[:, order]] + [b[order] for b in bias])
    return file_labels, None


def output_labels(file_labels) -> tuple[str, ...]:
    """The imported model's labels: the file's, less a declared background class, in ich-edge's order."""
    return canonical_order([label for label in file_labels if label != BACKGROUND])


def output_columns(file_labels) -> np.ndarray:
    """Columns of the file's outputs that give :func:`output_labels`, in that order."""
    return np.array([list(file_labels).index(label) for label in output_labels(file_labels)], dtype=np.intp)


def _select_layer(y, select, k: int):
    """A fixed 0/1 Dense that keeps the columns ``select`` of ``y`` (exact in float: one 1 per column)."""
    layer = keras.layers.Dense(len(select), use_bias=False, name=SELECT_NAME, trainable=False)
    out = layer(y)
    matrix = np.zeros((k, len(select)), np.float32)
    matrix[select, np.arange(len(select))] = 1.0
    layer.set_weights([matrix])
    return out


def _recurrent_summary(head_layers) -> tuple[str, int, bool]:
    """``(rnn kind, number of stacked recurrent layers, any Bidirectional)`` of the head."""
    cells = [type(getattr(l, "forward_layer", l)).__name__ for l in head_layers]
    found = [RECURRENT[c] for c in cells if c in RECURRENT]
    kinds = sorted(set(found))
    rnn = kinds[0] if len(kinds) == 1 else ("mixed" if kinds else "none")
    return rnn, len(found), any(type(l).__name__ == "Bidirectional" for l in head_layers)


def _shape(model, model_input: ModelInput, preprocess: PreprocessConfig, window_slices: int | None):
    """``(kind, T, S)`` of the model's input, checked against the cache and the options."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; import takes one of each")
    shape = tuple(model.input_shape)
    if len(shape) == 5:
        kind, (_, t, h, w, c) = "window", shape
    elif len(shape) == 4:
        kind, (_, h, w, c), t = "slice", shape, None
    else:
        raise ModelError(
            f"the model's input shape {shape} is neither a window (batch, slices, height, width, channels) nor a slice "
            "(batch, height, width, channels)"
        )
    if h is None or w is None or h != w:
        raise ModelError(f"the model's slice input is {h}x{w}; import needs a fixed square size (the cache is square)")
    if h != preprocess.input_size_px:
        raise ConfigError(
            f"the model takes {h} px slices but the cache was prepared at {preprocess.input_size_px} px; prepare a cache "
            f"with --size {h} (or pass the cache made for this model)"
        )
    if c != len(model_input.channels):
        raise ConfigError(
            f"the model takes {c} channel(s) but --channels names {len(model_input.channels)} "
            f"({', '.join(model_input.channels)}); pass --channels with one window name per model channel"
        )
    if window_slices is not None and t is not None and window_slices != t:
        raise ConfigError(f"--window-slices {window_slices} differs from the model's fixed window of {t} slices")
    t = t or window_slices
    if t is None:
        raise ConfigError("the model's window length is None: pass --window-slices N (the length it was trained on)")
    return kind, int(t), int(h)


def _parts(layers: list, kind: str) -> tuple[object, list, list]:
    """``(encoder body, encoder layers of the chain, head layers)`` of the model's chain."""
    if kind == "window":
        n = 0
        while n < len(layers) and type(layers[n]).__name__ == "TimeDistributed":
            n += 1
        if n == 0:
            raise ModelError(
                f"the window model starts with {layers[0].name!r} ({type(layers[0]).__name__}), not TimeDistributed: "
                "import needs the per-slice CNN wrapped in TimeDistributed"
            )
        inner = [l.layer for l in layers[:n]]
        return (inner[0] if n == 1 and hasattr(inner[0], "layers") else inner), layers[:n], layers[n:]
    n = len(layers)
    while n > 0 and type(layers[n - 1]).__name__ in VECTOR_LAYERS and len(layers[n - 1].input_shape) == 2:
        n -= 1
    if n == len(layers):
        raise ModelError("the per-slice model does not end in Dense layers on a feature vector; add Flatten/pooling and a Dense")
    return layers[:n], layers[:n], layers[n:]


def split_user_model(model, model_input: ModelInput, preprocess: PreprocessConfig, window_slices: int | None,
                     labels: tuple[str, ...] | None = None, softmax_ok: bool = False, original=None,
                     cache_series=()) -> Split:
    """The canonical (encoder, head) of a user's model, verified; see the module doc for the shapes.

    ``original`` runs the user's file when ``model`` is a rebuild of it (a Keras 3 file);
    ``cache_series`` adds real windows to the verification (:mod:`verify`).
    """
    from ich_edge.training.importer.verify import verification_windows

    kind, t, h = _shape(model, model_input, preprocess, window_slices)
    _check_layers(model)
    layers = _chain(model)
    body, encoder_layers, head_layers = _parts(layers, kind)
    image = keras.Input((h, h, 3), name="image")
    features = _replay(_adapter(image, model_input, preprocess), body)
    if len(features.shape) != 2:
        raise ModelError(
            f"the per-slice part ends in shape {tuple(features.shape)}, not a feature vector; put Flatten or global "
            "pooling inside TimeDistributed"
        )
    encoder = keras.Model(image, features, name=ENCODER_NAME)
    unit, cases = verification_windows(h, t, cache_series)
    raw = run_original(model, kind, model_input, preprocess, unit)  # before the labels are reordered in place
    reference = raw if original is None else run_original(original, kind, model_input, preprocess, unit)
    activation, dense = _final_activation(head_layers)
    file_labels, select = _map_labels(dense, activation, int(model.output_shape[-1]), labels, softmax_ok)
    head_in = keras.Input((t, int(features.shape[-1])), name="features")
    y = head_in
    for layer in head_layers:
        y = layer(y)
    if select is not None:
        y = _select_layer(y, select, int(model.output_shape[-1]))
    per_window = len(y.shape) == 2
    if per_window:
        y = keras.layers.RepeatVector(t, name=REPEAT_NAME)(y)
    if len(y.shape) != 3:
        raise ModelError(f"the head ends in shape {tuple(y.shape)}; expected (batch, slices, labels) or (batch, labels)")
    head = keras.Model(head_in, y, name=HEAD_NAME)
    rnn, depth, bidirectional = _recurrent_summary(head_layers)
    split = Split(encoder, head, kind, t, h, int(features.shape[-1]), rnn, per_window, activation, file_labels,
                  recurrent_layers=depth, bidirectional=bidirectional, verification=tuple(cases))
    if original is not None:
        check_rebuild(raw, reference, cases)
    located = lambda: _locate(model, kind, encoder_layers, head_layers, split, model_input, preprocess, unit)  # noqa: E731
    return replace(split, check_max_abs_diff=check_split(split, reference, unit, cases, located))


def check_rebuild(rebuilt: np.ndarray, original: np.ndarray, cases) -> None:
    """The tf_keras rebuild of a Keras 3 file equals Keras 3's own run on every verification window."""
    from ich_edge.training.importer.verify import TOLERANCE, worst

    diff = float(np.abs(rebuilt - original).max())
    if not diff <= TOLERANCE:
        raise ModelError(
            f"the tf_keras rebuild of the Keras 3 file differs from Keras 3 by {diff:.2e} (> {TOLERANCE:g}) on the "
            f"'{worst(rebuilt - original, list(cases))}' window; save the model with tf_keras as .h5 instead"
        )


def _locate(model, kind, encoder_layers, head_layers, split: Split, model_input, preprocess, unit) -> str:
    """The first layer where the canonical model and the user's model disagree on ``unit``."""
    from ich_edge.training.importer.verify import first_disagreement

    x = model_input(unit, preprocess)
    b, t = x.shape[:2]
    if kind == "slice":
        x = x.reshape(b * t, *x.shape[2:])
    try:
        probe = keras.Model(model.inputs[0], [encoder_layers[-1].output] + [l.output for l in head_layers])
        outputs = [np.asarray(o) for o in probe(x, training=False)]
    except (ValueError, AttributeError, RuntimeError) as err:
        return f"(cannot read the original's layer outputs: {str(err).splitlines()[0] if str(err) else err})"
    features = np.asarray(split.encoder(unit.reshape(b * t, *unit.shape[2:]), training=False))
    pairs = [(f"the slice encoder (up to layer {encoder_layers[-1].name!r})",
              features.reshape(b, t, -1) if kind == "window" else features, outputs[0])]
    y = features.reshape(b, t, -1)
    for layer, expected in zip(head_layers, outputs[1:]):
        y = np.asarray(layer(y, training=False))
        pairs.append((f"layer {layer.name!r}", y if kind == "window" else y.reshape(expected.shape), expected))
    return first_disagreement(pairs)


def run_original(model, kind: str, model_input: ModelInput, preprocess: PreprocessConfig, unit: np.ndarray) -> np.ndarray:
    """The ORIGINAL model (any callable on its own input) on standard windows ``(B, T, S, S, 3)``.

    Returns its raw outputs, ``(B, T, K)`` or ``(B, K)``, columns in the file's label order.
    """
    from ich_edge.training.importer.verify import in_batches

    x = model_input(unit, preprocess)
    b, t = x.shape[:2]
    if kind == "slice":
        return in_batches(model, x.reshape(b * t, *x.shape[2:])).reshape(b, t, -1)
    return in_batches(model, x)


def to_canonical(raw: np.ndarray, window_slices: int, file_labels) -> np.ndarray:
    """Raw outputs of :func:`run_original` as ``(B, T, K)`` in the imported model's order (:func:`ich_edge.labels.canonical_order`)."""
    if raw.ndim == 2:
        raw = np.repeat(raw[:, None, :], window_slices, axis=1)
    return raw[..., output_columns(file_labels)]


def check_split(split: Split, raw: np.ndarray, unit: np.ndarray, cases=(), locate=None, tolerance: float | None = None) -> float:
    """Largest |canonical - original| on the verification windows ``unit`` whose original outputs are ``raw``.

    Past ``tolerance`` (:data:`verify.TOLERANCE`) a :class:`ModelError` names the window and,
    through ``locate()``, the first layer where the two disagree: nothing is written.
    """
    from ich_edge.training.importer.verify import TOLERANCE, in_batches, worst
    from ich_edge.training.model import build_cnn_lstm

    tolerance = TOLERANCE if tolerance is None else tolerance
    whole = build_cnn_lstm(split.encoder, split.head, split.window_slices)
    canonical = in_batches(lambda w: whole(w, training=False), unit)
    diff = canonical - to_canonical(raw, split.window_slices, split.file_labels)
    largest = float(np.abs(diff).max())
    if not largest <= tolerance:
        where = locate() if locate else "unknown"
        window = worst(diff, list(cases)) if len(cases) == len(unit) else "a verification"
        raise ModelError(
            f"the imported model would differ from yours by {largest:.2e} (> {tolerance:g}) on the '{window}' window; "
            f"first disagreement: {where}; nothing was written (please report this with the model)"
        )
    return largest
