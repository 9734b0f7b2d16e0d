"""The recurrent head as a stateless graph: unrolled over the fixed window, each weight stored once.

Why: TFLite fuses a Keras LSTM into UNIDIRECTIONAL_SEQUENCE_LSTM, whose state lives in
four *variable tensors* that persist between invocations. LiteRT's CompiledModel, its GPU
accelerator and LiteRT.js 2.x refuse such files ("Variable tensors not yet supported"),
TensorFlowLiteSwift cannot reset them, and an app that forgets the reset is silently wrong
from the second window on. Unrolled over the window's fixed length, the same arithmetic
needs only FULLY_CONNECTED/BATCH_MATMUL, LOGISTIC, TANH, MUL, ADD, SPLIT and CONCATENATION:
builtins that every runtime runs, and nothing survives an invocation.

Each recurrent weight is one constant read by every step (the flatbuffer stores it once).
A bidirectional layer runs both directions as one batch of two (weights stacked), so each
step's gate arithmetic is one set of ops for both; only the recurrent product is one
FULLY_CONNECTED per direction, because XNNPACK takes FULLY_CONNECTED in every precision
but not integer BATCH_MATMUL (a batched product split the int8 ``classify`` into 28
delegate partitions; this form leaves 4-5). Keras' TF 2.21 ``unroll=True`` instead splits
every gate of every step into its own matmul and stored 2.2x the fused file's bytes in
fp32 and 7.7x in int8 on the demo head; see ``benchmarks/stateless_head.py``.

Supported heads are linear stacks (each layer takes the previous layer's output): LSTM,
GRU (``reset_after`` either way) and SimpleRNN, alone or in ``Bidirectional``
(``merge_mode`` concat, sum, mul or ave), ``return_sequences`` either way, plus any layer
that is stateless at inference (Dense, TimeDistributed, Dropout, activations, ...).
"""

from __future__ import annotations

import numpy as np

from ich_edge.errors import ConversionError
from ich_edge.training.keras import keras, tf
from ich_edge.training.projection import IDENTITY_AT_INFERENCE as _IDENTITY_AT_INFERENCE
from ich_edge.training.projection import RECURRENT_CELLS as _RECURRENT
from ich_edge.training.projection import head_layers


def _kind(layer) -> str:
    return type(layer).__name__


def _check_layer(layer) -> None:
    if getattr(layer, "stateful", False):
        raise ConversionError(f"layer {layer.name!r} is stateful=True; a deployed window must not depend on the last one")


def _weights(layer) -> list:
    """``[kernel, recurrent_kernel, bias]`` of a recurrent layer's cell (variables; bias may be None).

    The variables themselves (not NumPy copies) so that the function can be traced: the
    converter freezes them into constants, each stored once.
    """
    cell = layer.cell
    return [cell.kernel, cell.recurrent_kernel, cell.bias if getattr(cell, "use_bias", True) else None]


def _step_lstm(z, c, cell):
    """One LSTM step from the pre-activations ``z`` (gate order i, f, c, o as in Keras).

    Every SPLIT output is used: TFLite's quantizer leaves a SPLIT with an unused output in
    float (a DEQUANTIZE/QUANTIZE pair around it in an int8 file), so the zero-state first
    step, whose forget gate multiplies nothing, slices the three gates it needs instead.
    """
    sigmoid, tanh = cell.recurrent_activation, cell.activation
    if c is None:
        units = int(z.shape[-1]) // 4
        i, g, o = z[..., :units], z[..., 2 * units : 3 * units], z[..., 3 * units :]
        c = sigmoid(i) * tanh(g)
    else:
        i, f, g, o = tf.split(z, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * tanh(g)
    return sigmoid(o) * tanh(c), c


def _recurrent_product(h, recurrent):
    """``h (D, H) @ recurrent (D, H, G*H)`` -> ``(D, G*H)``: one FULLY_CONNECTED per direction.

    A single BATCH_MATMUL would be one op, but XNNPACK does not take integer BATCH_MATMUL:
    in int8 files every step fell back to builtin kernels and split ``classify`` into 28
    delegate partitions. SPLIT, FULLY_CONNECTED and CONCATENATION run on XNNPACK in every
    precision (UNPACK/PACK do not: they made 50 partitions).
    """
    if int(h.shape[0]) == 1:
        return tf.matmul(h, recurrent[0])
    rows = tf.split(h, int(h.shape[0]), axis=0)
    return tf.concat([tf.matmul(row, recurrent[d]) for d, row in enumerate(rows)], axis=0)


def _unrolled(layers, x, projected: bool = False):
    """Run 1 or 2 same-type recurrent layers over ``x (T, F)`` as a batch of directions.

    ``projected``: ``x (T, D*G*H)`` already holds every direction's input projection with its
    input bias (:mod:`ich_edge.training.projection` moved it into ``encode``), directions side
    by side in layer order; only the recurrence runs here.

    Returns ``(D, T, H)`` outputs in each direction's processing order (a ``go_backwards``
    layer reads and emits the reversed sequence, as Keras does).
    """
    kind = _kind(layers[0])
    cell = layers[0].cell
    if projected:
        parts = tf.split(x, len(layers), axis=-1) if len(layers) > 1 else [x]  # D x (T, G*H)
        steps_in = [tf.reverse(p, [0]) if layer.go_backwards else p for p, layer in zip(parts, layers)]
    else:
        steps_in = [tf.reverse(x, [0]) if layer.go_backwards else x for layer in layers]  # D x (T, F)
    weights = [_weights(layer) for layer in layers]
    recurrent = tf.stack([w[1] for w in weights])  # (D, H, G*H)
    use_bias = bool(getattr(cell, "use_bias", True))
    num_steps = int(x.shape[0])
    if kind == "GRU" and getattr(cell, "reset_after", False):
        bias = tf.stack([w[2] for w in weights]) if use_bias else None  # (D, 2, 3H): input and recurrent bias
        input_bias = None if bias is None else bias[:, 0][:, None, :]
        recurrent_bias = None if bias is None else bias[:, 1]  # (D, 3H)
    else:
        input_bias = tf.stack([w[2] for w in weights])[:, None, :] if use_bias else None
        recurrent_bias = None
    # Every step's input projection at once, one FULLY_CONNECTED per direction: a batched
    # (D, T, F) @ (D, F, G*H) would be a BATCH_MATMUL, which XNNPACK does not take in integer
    # files (the paper model's 28,800-feature projection then ran in builtin kernels: int8
    # classify 2x slower than fp32).
    if projected:
        projected = tf.concat([inputs[None] for inputs in steps_in], axis=0)  # (D, T, G*H), bias included
    else:
        projected = tf.concat([tf.matmul(inputs, w[0])[None] for inputs, w in zip(steps_in, weights)], axis=0)
        if input_bias is not None:
            projected = projected + input_bias
    per_step = tf.unstack(projected, axis=1)  # T x (D, G*H): one UNPACK for the whole window
    h = c = None
    outputs = []
    for t in range(num_steps):
        z = per_step[t]
        if kind == "LSTM":
            if h is not None:
                z = z + _recurrent_product(h, recurrent)
            h, c = _step_lstm(z, c, cell)
        elif kind == "GRU":
            h = _step_gru(z, h, recurrent, recurrent_bias, cell)
        else:  # SimpleRNN
            h = cell.activation(z if h is None else z + _recurrent_product(h, recurrent))
        outputs.append(h)
    return tf.stack(outputs, axis=1)  # (D, T, H)


def _step_gru(z, h, recurrent, recurrent_bias, cell):
    """One GRU step (Keras gate order z, r, h; ``reset_after`` as the layer says)."""
    if h is None:  # zero state: the recurrent product is just its bias
        if recurrent_bias is not None:
            x_z, x_r, x_h = tf.split(z, 3, axis=-1)
            r_z, r_r, r_h = tf.split(tf.broadcast_to(recurrent_bias, tf.shape(z)), 3, axis=-1)
            zg = cell.recurrent_activation(x_z + r_z)
            rg = cell.recurrent_activation(x_r + r_r)
            hh = cell.activation(x_h + rg * r_h)
        else:  # slices, not the split's outputs: x_r would go unused (see _step_lstm)
            units = int(z.shape[-1]) // 3
            zg = cell.recurrent_activation(z[..., :units])
            hh = cell.activation(z[..., 2 * units :])
        return (1.0 - zg) * hh
    x_z, x_r, x_h = tf.split(z, 3, axis=-1)
    if getattr(cell, "reset_after", False):
        r = _recurrent_product(h, recurrent)
        if recurrent_bias is not None:
            r = r + recurrent_bias
        r_z, r_r, r_h = tf.split(r, 3, axis=-1)
        zg = cell.recurrent_activation(x_z + r_z)
        rg = cell.recurrent_activation(x_r + r_r)
        hh = cell.activation(x_h + rg * r_h)
    else:
        units = int(x_z.shape[-1])
        rec_zr, rec_h = recurrent[:, :, : 2 * units], recurrent[:, :, 2 * units :]
        r_z, r_r = tf.split(_recurrent_product(h, rec_zr), 2, axis=-1)
        zg = cell.recurrent_activation(x_z + r_z)
        rg = cell.recurrent_activation(x_r + r_r)
        hh = cell.activation(x_h + _recurrent_product(rg * h, rec_h))
    return zg * h + (1.0 - zg) * hh


def _recurrent(layer, x, projected: bool = False):
    """A recurrent layer (or Bidirectional of one) on ``x (T, F)`` -> ``(T, H')`` or ``(H',)``
    (``x (T, D*G*H)``, the input projection done, when ``projected``: see :func:`_unrolled`)."""
    if _kind(layer) == "Bidirectional":
        forward, backward = layer.forward_layer, layer.backward_layer
        if _kind(forward) != _kind(backward):
            raise ConversionError(f"{layer.name}: a Bidirectional of two different cell types is not supported")
        for inner in (forward, backward):
            _check_layer(inner)
        both = _unrolled([forward, backward], x, projected)  # (2, T, H), backward in reversed time
        sequences = layer.return_sequences
        if sequences:
            fw, bw = both[0], tf.reverse(both[1], [0]) if backward.go_backwards else both[1]
        else:
            fw, bw = both[0, -1], both[1, -1]
        mode = layer.merge_mode
        if mode == "concat":
            return tf.concat([fw, bw], axis=-1)
        if mode == "sum":
            return fw + bw
        if mode == "mul":
            return fw * bw
        if mode == "ave":
            return (fw + bw) * 0.5
        raise ConversionError(f"{layer.name}: Bidirectional merge_mode={mode!r} is not supported; use concat, sum, mul or ave")
    _check_layer(layer)
    out = _unrolled([layer], x, projected)[0]  # (T, H) in processing order
    return out if layer.return_sequences else out[-1]


def stateless_head_fn(head, window_slices: int, split=None):
    """A function ``features (1, T, F) -> (1, T, K)`` computing ``head`` without state.

    With a projected ``split`` (:func:`ich_edge.training.projection.head_split`) the function
    takes ``(1, T, D*G*H)``, what the deployed ``encode`` gives: the split's per-slice layers
    and the first recurrent layer's input projection already ran there.

    Parameters
    ----------
    head : the Keras head (``features (B, T, F)`` -> ``(B, T, K)`` or ``(B, K)``), a linear
        stack of layers.
    window_slices : T, the fixed window length of the deployed ``classify``.

    A head whose output has no time axis (``return_sequences=False`` at the end) gives its
    window vector to every slice of the window: the output is tiled to ``(1, T, K)``.

    Raises
    ------
    ConversionError
        A layer the unrolled form cannot express (a stateful layer, a branching graph).
    """
    layers = head_layers(head)
    for layer in layers:
        inbound = getattr(layer, "_inbound_nodes", [])
        if any(len(tf.nest.flatten(node.inbound_layers)) > 1 for node in inbound):
            raise ConversionError(
                f"head layer {layer.name!r} takes several inputs; ich-edge unrolls linear heads only "
                "(one layer after the other)"
            )

    projected = split is not None and split.projected
    skip = len(split.prefix) if projected else 0  # the layers before the recurrent one ran in encode

    def run(features):
        x = features[0]  # (T, F)
        for index, layer in enumerate(layers[skip:], start=skip):
            kind = _kind(layer)
            if kind in _IDENTITY_AT_INFERENCE:
                continue
            with tf.name_scope(layer.name):  # tensor names say which layer an op belongs to (converters.layers)
                if kind in _RECURRENT or kind == "Bidirectional":
                    x = _recurrent(layer, x, projected=projected and index == skip)
                else:
                    x = layer(x[None], training=False)[0]
        if len(x.shape) == 1:  # one vector per window: every slice gets it
            x = tf.tile(x[None], [window_slices, 1])
        return x[None]

    return run


def check_equivalent(head, window_slices: int, feature_dim: int, atol: float = 1e-4, seed: int = 0) -> float:
    """Max |difference| between ``head`` and its stateless form on random windows; raises past ``atol``."""
    rng = np.random.default_rng(seed)
    window = rng.normal(0.0, 1.0, (1, window_slices, feature_dim)).astype(np.float32)
    expected = np.asarray(head(window, training=False), np.float32)
    if expected.ndim == 2:
        expected = np.repeat(expected[:, None, :], window_slices, axis=1)
    got = np.asarray(stateless_head_fn(head, window_slices)(tf.constant(window)))
    diff = float(np.abs(got - expected).max())
    if not diff <= atol:
        raise ConversionError(
            f"the stateless head differs from the Keras head by {diff:.2e} (> {atol:g}); "
            "report this with the head's layer list"
        )
    return diff


__all__ = ["stateless_head_fn", "check_equivalent", "head_layers"]
_ = keras  # the head's layers are tf_keras layers (ich_edge.training.keras selects them)
