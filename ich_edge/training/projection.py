"""Where ``encode`` ends: the slice features, or the first recurrent layer's input projection of them.

A recurrent layer multiplies every step's input by its input kernel (``x W + b`` for every
gate and direction) before the recurrence. Inside ``classify`` that product runs once for
every window a slice is in (twice at half overlap), 1 x T rows at a time. For a wide feature
vector it dominates: the seed paper's model flattens a 30 x 30 x 32 map, so each window
multiplies 28,800 features by a 28,800 x 128 kernel, a memory-bound product that int8 barely
speeds up (``benchmarks/paper_model.py``). *Projected*, ``encode`` ends with that product, run
once per slice as one FULLY_CONNECTED over the batch of slices of a call, and ``classify``
takes ``D*G*H`` values per slice (directions x gates x units) and does only the recurrence.
Per-slice layers before the recurrent one (Dense, activations, TimeDistributed, Dropout)
move into ``encode`` with it.

Rule (``auto``, what ``convert`` does unless told otherwise): project when the head allows it
and the projected vector is narrower than the features (``D*G*H < F``); then ``classify``
reads fewer values and ``encode`` does each product once. ich-edge's own heads are the other
way round (64 features, 2 x 4 x 32 = 256 gate inputs) and stay unprojected: more values per
slice for a product that is 2% of a study there. ``always``/``never`` force it (benchmarks
compare both forms of one model; ``always`` refuses a head that cannot be projected).

For apps nothing changes: ``encode`` still gives one vector per slice, ``classify`` windows of
them, and padding slots hold ``encode(blank image)``; only the vector's meaning and length
differ. The file's description says which (``sequence.features``), and so does the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

from ich_edge.errors import ConfigError, ConversionError

#: TensorFlow is imported by the functions that build graphs, so that the CLI lists these quickly.
PROJECTION_MODES = ("auto", "always", "never")
SLICE_FEATURES, PROJECTED = "slice features", "projected"
#: The recurrent layers ich_edge.training.stateless unrolls, and the layers that are the identity
#: at inference: one list for both modules (stateless imports them from here, TensorFlow-free).
RECURRENT_CELLS = ("LSTM", "GRU", "SimpleRNN")
IDENTITY_AT_INFERENCE = ("Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "InputLayer")
_RECURRENT = RECURRENT_CELLS + ("Bidirectional",)
_IDENTITY = IDENTITY_AT_INFERENCE
#: Layers that act on each slice alone, so that ``encode`` may run them (on ``(B, F)``).
_PER_SLICE = ("Dense", "TimeDistributed", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax") + _IDENTITY


@dataclass(frozen=True)
class Split:
    """Where ``encode`` ends and ``classify`` begins (made by :func:`head_split`).

    Attributes
    ----------
    projected : ``encode`` ends with ``prefix`` and the input projection of ``layer``.
    feature_dim : the encoder's output width F.
    classify_dim : the width of the vector ``classify`` takes per slice (F, or D*G*H).
    prefix : the head's layers before its first recurrent one (identity ones included).
    layer : the first recurrent layer (None in a head without one).
    reason : why it is (not) projected, one sentence.
    """

    projected: bool
    feature_dim: int
    classify_dim: int
    prefix: tuple = ()
    layer: object = None
    reason: str = ""

    def to_dict(self) -> dict:
        """What the file's description records (``sequence.features``)."""
        return {
            "kind": PROJECTED if self.projected else SLICE_FEATURES,
            "dim": self.classify_dim,
            "encoder_dim": self.feature_dim,
            "projection_of": getattr(self.layer, "name", None) if self.projected else None,
            "rule": self.reason,
        }


def _directions(layer) -> list:
    return [layer.forward_layer, layer.backward_layer] if type(layer).__name__ == "Bidirectional" else [layer]


def _input_kernel_and_bias(direction):
    """The input kernel ``(F', G*H)`` and input bias ``(G*H,)`` (None) of one direction's cell."""
    cell = direction.cell
    bias = cell.bias if getattr(cell, "use_bias", True) else None
    if bias is not None and len(bias.shape) == 2:  # GRU reset_after: (2, 3H), row 0 is the input bias
        bias = bias[0]
    return cell.kernel, bias


def head_layers(head) -> list:
    """The head's layers in order, without its InputLayer (the list the split indexes)."""
    return [layer for layer in head.layers if type(layer).__name__ != "InputLayer"]


def head_split(head, feature_dim: int, mode: str = "auto") -> Split:
    """Decide the split of ``head`` (features of width ``feature_dim``) by ``mode`` (see the module docstring)."""
    if mode not in PROJECTION_MODES:
        raise ConfigError(f"projection must be one of {', '.join(PROJECTION_MODES)}, got {mode!r}")
    layers = head_layers(head)
    first = next((i for i, layer in enumerate(layers) if type(layer).__name__ in _RECURRENT), None)
    if mode == "never":
        return Split(False, feature_dim, feature_dim, reason="not projected (asked: never)")
    if first is None:
        blocker = "the head has no recurrent layer"
    else:
        blocker = next((f"layer {layer.name!r} ({type(layer).__name__}) before the recurrent one is not per-slice"
                        for layer in layers[:first] if type(layer).__name__ not in _PER_SLICE), None)
    if first is None or blocker:
        if mode == "always":
            raise ConversionError(f"cannot move the input projection into encode: {blocker}; convert with --projection never")
        return Split(False, feature_dim, feature_dim, reason=f"not projected: {blocker}")
    width = sum(int(_input_kernel_and_bias(d)[0].shape[-1]) for d in _directions(layers[first]))
    if mode == "auto" and width >= feature_dim:
        return Split(False, feature_dim, feature_dim, prefix=tuple(layers[:first]), layer=layers[first],
                     reason=f"not projected: {width} gate inputs per slice are not fewer than the {feature_dim} features")
    why = (f"projected: {layers[first].name}'s input projection runs once per slice in encode "
           f"({feature_dim} features -> {width} gate inputs)")
    return Split(True, feature_dim, width, tuple(layers[:first]), layers[first], why + (" (asked: always)" if mode == "always" else ""))


def deployed_split(run, mode: str = "auto") -> Split:
    """:func:`head_split` of a loaded run (:class:`ich_edge.training.run.Run`): its head and encoder width."""
    return head_split(run.head, int(run.encoder.output_shape[-1]), mode)


def encode_tail(split: Split):
    """A function ``features (B, F) -> (B, classify_dim)``: the split's per-slice layers and the
    input projection (one matmul of every direction's kernel side by side, plus the input bias),
    or the identity when not projected."""
    if not split.projected:
        return lambda features: features
    from ich_edge.training.keras import tf

    directions = _directions(split.layer)

    def tail(features):
        x = features
        for layer in split.prefix:
            kind = type(layer).__name__
            if kind in _IDENTITY:
                continue
            with tf.name_scope(layer.name):
                x = (layer.layer if kind == "TimeDistributed" else layer)(x, training=False)
        with tf.name_scope(split.layer.name):
            pairs = [_input_kernel_and_bias(d) for d in directions]
            kernel = tf.concat([k for k, _ in pairs], axis=-1) if len(pairs) > 1 else pairs[0][0]
            x = tf.matmul(x, kernel)
            if pairs[0][1] is not None:
                x = x + (tf.concat([b for _, b in pairs], axis=-1) if len(pairs) > 1 else pairs[0][1])
        return x

    return tail


def deployed_encoder(encoder, split: Split):
    """``encode`` as the file computes it, for NumPy callers (calibration, verification):
    ``float32 (B, S, S, 3)`` -> ``(B, classify_dim)``; the Keras encoder itself when not projected."""
    if not split.projected:
        return encoder
    tail = encode_tail(split)
    return lambda images: tail(encoder(images, training=False))


__all__ = ["PROJECTION_MODES", "Split", "head_layers", "head_split", "deployed_split", "encode_tail", "deployed_encoder"]
