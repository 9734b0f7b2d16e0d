"""Quantization-aware training of an imported slice encoder (``ich-edge qat`` on an imported run).

``quantize_model`` refuses a whole model when one layer is outside TFMOT's default 8-bit
registry; a model from elsewhere may hold such layers (e.g. LeakyReLU, SpatialDropout2D).
Here each layer the registry supports is annotated, the others stay in float (and are
named), and ``quantize_apply`` builds the fake-quant encoder with the float weights.
"""

from __future__ import annotations

from ich_edge.errors import ModelError
from ich_edge.training.keras import keras, quantization_api
from ich_edge.training.model import build_cnn_lstm, split_model

#: In a QAT_DIR of an imported run: the float model, from which load_qat_run rebuilds the architecture.
FLOAT_MODEL_FILE = "imported_float.keras"


def _registry():
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_registry import (
        Default8BitQuantizeRegistry,
    )

    return Default8BitQuantizeRegistry()


def quantize_imported_encoder(encoder) -> tuple[object, list[str]]:
    """``(qat_encoder, names of the layers left in float)``; the float weights are kept."""
    api, registry = quantization_api(), _registry()
    layers = [l for l in encoder.layers if type(l).__name__ != "InputLayer"]
    left = [l.name for l in layers if not registry.supports(l)]
    weights = {l.name: l.get_weights() for l in layers}

    def annotate(layer):
        fresh = layer.__class__.from_config(layer.get_config())
        return api.quantize_annotate_layer(fresh) if registry.supports(layer) else fresh

    try:
        annotated = keras.models.clone_model(encoder, clone_function=annotate)
        for layer in annotated.layers:
            inner = getattr(layer, "layer", layer)
            if inner.name in weights:
                inner.set_weights(weights[inner.name])
        with api.quantize_scope():
            quantized = api.quantize_apply(annotated)
    except (ValueError, RuntimeError, TypeError) as err:
        raise ModelError(f"tensorflow-model-optimization cannot quantize the imported encoder ({err}); "
                         f"layers it leaves in float: {', '.join(left) or 'none'}") from err
    return quantized, left


def load_imported_qat_model(float_model, window_slices: int):
    """``(qat_encoder, head, model)`` rebuilt from the float model kept in the QAT_DIR (loaded Keras model;
    :func:`ich_edge.training.run_load.load_models` loads it)."""
    encoder, head = split_model(float_model)
    qat_encoder, _ = quantize_imported_encoder(encoder)
    return qat_encoder, head, build_cnn_lstm(qat_encoder, head, window_slices)
