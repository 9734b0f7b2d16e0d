"""The Keras 3 side of ``ich-edge import``: run in a subprocess, never imported with TensorFlow.

TF_USE_LEGACY_KERAS is process-wide, so a Keras 3 ``.keras`` file is opened in a child
process started by :func:`ich_edge.training.importer.load.keras3_export` (dump mode) or
:class:`ich_edge.training.importer.reference.Keras3Worker` (serve mode). This file imports
nothing from ich_edge at module level and keras only inside the functions, so the parent
can import :func:`leaf_layers` from it.

Usage::

    python keras3_side.py dump MODEL.keras OUT_DIR WINDOW   # architecture.json, weights.npz, probe.npz
    python keras3_side.py serve MODEL.keras                 # npy in on stdin -> npy out on stdout
"""

from __future__ import annotations

import io
import json
import struct
import sys

MODEL_CLASSES = ("Sequential", "Functional", "Model")


def leaf_layers(layer, prefix: str = ""):
    """``(key, layer)`` of every weight-holding leaf, the same keys in Keras 3 and tf_keras.

    Models are entered (their layers in order), TimeDistributed by its wrapped layer and
    Bidirectional by ``forward``/``backward``; InputLayers are skipped.
    """
    kind = type(layer).__name__
    if kind == "InputLayer":
        return
    if kind in MODEL_CLASSES or (hasattr(layer, "layers") and not hasattr(layer, "cell")):
        for inner in layer.layers:
            yield from leaf_layers(inner, f"{prefix}{layer.name}/")
    elif kind == "Bidirectional":
        yield f"{prefix}{layer.name}/forward", layer.forward_layer  # inner names differ between Keras versions
        yield f"{prefix}{layer.name}/backward", layer.backward_layer
    elif kind == "TimeDistributed":
        yield from leaf_layers(layer.layer, f"{prefix}{layer.name}/")
    else:
        yield f"{prefix}{layer.name}", layer


def _probe_input(shape, window: int):
    import numpy as np

    dims = [2] + [window if d is None else int(d) for d in shape[1:]]
    return np.random.default_rng(0).uniform(0.0, 1.0, dims).astype(np.float32)


def dump(model_path: str, out_dir: str, window: int) -> None:
    """Write the model's config, its leaf weights and its output on a probe input."""
    import numpy as np
    import keras

    model = keras.saving.load_model(model_path, compile=False)
    config = {"keras_version": keras.__version__, "class_name": type(model).__name__, "config": model.get_config()}
    with open(f"{out_dir}/architecture.json", "w") as handle:
        json.dump(config, handle, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    weights = {}
    for key, leaf in leaf_layers(model):
        for i, value in enumerate(leaf.get_weights()):
            weights[f"{key}#{i}"] = value
    np.savez(f"{out_dir}/weights.npz", **weights)
    probe = _probe_input(model.inputs[0].shape, window)
    np.savez(f"{out_dir}/probe.npz", x=probe, y=np.asarray(model(probe, training=False), np.float32))


def _read_exact(stream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def serve(model_path: str) -> None:
    """Answer length-prefixed npy arrays on stdin with the model's outputs on stdout."""
    import numpy as np
    import keras

    model = keras.saving.load_model(model_path, compile=False)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(b"READY\n")
    stdout.flush()
    while True:
        try:
            (size,) = struct.unpack("<Q", _read_exact(stdin, 8))
        except EOFError:
            return
        x = np.load(io.BytesIO(_read_exact(stdin, size)))
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(model(x, training=False), np.float32))
        stdout.write(struct.pack("<Q", len(buffer.getvalue())) + buffer.getvalue())
        stdout.flush()


if __name__ == "__main__":
    if sys.argv[1] == "dump":
        dump(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        serve(sys.argv[2])
