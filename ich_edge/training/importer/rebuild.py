"""Rebuild a Keras 3 model in tf_keras from its config and weights (``ich-edge import``).

Keras 3 and tf_keras serialize layers differently (dtype policies, ``module`` keys,
``batch_shape``, functional node records), so the config is not handed to tf_keras as it
is: each layer is rebuilt from its class and the constructor arguments tf_keras knows, and
the weights are set leaf by leaf (:func:`keras3_side.leaf_layers` gives both sides the
same keys). Only the standard layers in :data:`SUPPORTED` are rebuilt.
"""

from __future__ import annotations

import inspect

import numpy as np

from ich_edge.errors import ModelError
from ich_edge.training.importer.keras3_side import leaf_layers
from ich_edge.training.keras import keras

SUPPORTED = (
    "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "BatchNormalization", "Activation", "ReLU", "LeakyReLU",
    "Softmax", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten",
    "Dropout", "SpatialDropout2D", "Dense", "LSTM", "GRU", "SimpleRNN", "Bidirectional", "TimeDistributed",
    "Reshape", "Add", "Concatenate", "Rescaling", "ZeroPadding2D",
    # the identity at inference (left out of the split)
    "SpatialDropout1D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
)
BASE_ARGS = {"name", "trainable"}


def _constructor_args(cls, config: dict) -> dict:
    """The entries of a Keras 3 layer config that ``cls.__init__`` of tf_keras names."""
    params = set(inspect.signature(cls.__init__).parameters) | BASE_ARGS
    out = {}
    for key, value in config.items():
        if key not in params or key in ("dtype", "layer", "backward_layer"):
            continue
        if isinstance(value, dict) and "class_name" in value:
            continue  # initializers, regularizers, constraints: the weights are set afterwards
        out[key] = tuple(value) if isinstance(value, list) and key != "target_shape" else value
    if "target_shape" in out:
        out["target_shape"] = tuple(out["target_shape"])
    return out


def build_layer(record: dict):
    """A tf_keras layer (or model) from one serialized Keras 3 layer record."""
    class_name = record.get("class_name")
    config = record.get("config", {})
    if class_name in ("Sequential", "Functional", "Model"):
        return build_model(class_name, config)
    if class_name not in SUPPORTED:
        raise ModelError(
            f"layer {config.get('name', '?')!r} is a {class_name}, which ich-edge import cannot rebuild from a Keras 3 file "
            f"(supported: {', '.join(SUPPORTED)}); save the model with tf_keras as .h5, or replace that layer"
        )
    cls = getattr(keras.layers, class_name)
    args = _constructor_args(cls, config)
    if class_name == "TimeDistributed":
        return cls(build_layer(config["layer"]), **args)
    if class_name == "Bidirectional":
        backward = build_layer(config["backward_layer"]) if config.get("backward_layer") else None
        return cls(build_layer(config["layer"]), backward_layer=backward, **args)
    return cls(**args)


def _input_record(config: dict) -> tuple[tuple, str]:
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    if shape is None:
        raise ModelError(f"input {config.get('name')!r} has no shape; save the model after building it with an Input")
    return tuple(shape[1:]), config.get("name", "input")


def build_model(class_name: str, config: dict):
    """A tf_keras Sequential or functional model from a Keras 3 model config."""
    layers = config["layers"]
    if class_name == "Sequential":
        first = layers[0]
        if first.get("class_name") == "InputLayer":
            shape, name = _input_record(first["config"])
            layers = layers[1:]
        elif config.get("build_input_shape"):
            shape, name = tuple(config["build_input_shape"][1:]), "input"
        else:
            raise ModelError("the Sequential model was never built (no input shape); build it before saving")
        return keras.Sequential([keras.Input(shape, name=name)] + [build_layer(r) for r in layers], name=config.get("name"))
    tensors = {}
    for record in layers:
        name = record.get("name") or record["config"]["name"]
        if record["class_name"] == "InputLayer":
            shape, _ = _input_record(record["config"])
            tensors[name] = keras.Input(shape, name=name)
            continue
        layer = build_layer(record)
        nodes = record.get("inbound_nodes") or []
        if len(nodes) != 1:
            raise ModelError(f"layer {name!r} is called {len(nodes)} times; import takes layers used once")
        args = nodes[0].get("args", [])
        inputs = _resolve(args[0] if len(args) == 1 else args, tensors)
        tensors[name] = layer(inputs)
    inputs, outputs = _ends(config["input_layers"], tensors), _ends(config["output_layers"], tensors)
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs[0] if len(outputs) == 1 else outputs,
                       name=config.get("name"))


def _ends(refs: list, tensors: dict) -> list:
    """Tensors of ``[[name, node, index], ...]`` (or a single ``[name, node, index]``)."""
    refs = refs if refs and isinstance(refs[0], list) else [refs]
    return [tensors[ref[0]] for ref in refs]


def _resolve(arg, tensors: dict):
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        return tensors[arg["config"]["keras_history"][0]]
    if isinstance(arg, (list, tuple)):
        return [_resolve(a, tensors) for a in arg]
    raise ModelError(f"cannot read a layer input recorded as {str(arg)[:80]}; save the model with tf_keras as .h5")


def set_weights(model, weights: dict) -> None:
    """Set every leaf layer's weights from ``{"<key>#<i>": array}`` (Keras 3 leaf order)."""
    used = set()
    for key, leaf in leaf_layers(model):
        values = [weights[f"{key}#{i}"] for i in range(len(leaf.weights)) if f"{key}#{i}" in weights]
        if len(values) != len(leaf.weights):
            raise ModelError(f"layer {key!r} has {len(leaf.weights)} weights in tf_keras but {len(values)} in the Keras 3 file")
        leaf.set_weights([np.asarray(v) for v in values])
        used.update(f"{key}#{i}" for i in range(len(values)))
    unused = sorted(set(weights) - used)
    if unused:
        raise ModelError(f"weights {unused[:3]} of the Keras 3 file have no layer in the rebuilt model")


def rebuild(architecture: dict, weights: dict):
    """The tf_keras model of a Keras 3 dump (``keras3_side.dump``) with its weights."""
    model = build_model(architecture["class_name"], architecture["config"])
    set_weights(model, weights)
    return model
