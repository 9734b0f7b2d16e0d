"""The Keras models of a run folder (:meth:`ich_edge.training.run_dir.RunDir.load_keras`).

A float RUN_DIR (and an imported model's) loads model.keras. A QAT_DIR cannot: tf_keras 2.21 /
TFMOT 0.8 cannot read a TFMOT model back from ``.keras`` (QuantizeLayer is built twice and the
wrappers list their kernel twice, so variable counts do not match), so its architecture is
rebuilt from config.json (:func:`build_qat_model`, or the imported float model for an
imported run's QAT_DIR) and model.keras's weights are loaded into it. This module takes the
:class:`~ich_edge.training.run_dir.RunDir` it is handed and imports nothing of it (the folder
is read there, once).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ich_edge.errors import ModelError
from ich_edge.training.keras import keras, quantization_api
from ich_edge.training.model import ModelConfig, build_cnn_lstm, build_model, split_model


def load_model_file(path: str | Path, custom_object_scope=None):
    """Load a ``.keras`` CNN-LSTM without compiling it, inside ``custom_object_scope`` if given."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path} is missing; train a model first (`ich-edge train --out {path.parent}`)")
    scope = custom_object_scope if custom_object_scope is not None else contextlib.nullcontext()
    try:
        with scope:
            return keras.models.load_model(path, compile=False)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ModelError(
            f"{path} cannot be loaded ({err}); a QAT model needs the quantize scope "
            "(tfmot.quantization.keras.quantize_scope())"
        ) from err


def quantize_encoder(encoder):
    """The slice encoder with TFMOT fake-quant (default 8-bit scheme), weights copied."""
    try:
        return quantization_api().quantize_model(encoder)
    except (ValueError, RuntimeError) as err:
        raise ModelError(
            f"the slice encoder cannot be quantized by tensorflow-model-optimization ({err}); "
            "QAT supports the edge and mobilenetv2 backbones of ich_edge.training.model"
        ) from err


def build_qat_model(model_config: ModelConfig, window_slices: int):
    """A fresh QAT CNN-LSTM: ``(qat_encoder, head, model)`` (the layout :func:`load_models` reads)."""
    encoder, head, _ = build_model(model_config, window_slices)
    qat_encoder = quantize_encoder(encoder)
    return qat_encoder, head, build_cnn_lstm(qat_encoder, head, window_slices)


def load_models(run_dir, custom_object_scope=None) -> tuple:
    """``(encoder, head, model)`` of an opened run folder (a :class:`~ich_edge.training.run_dir.RunDir`)."""
    if not run_dir.quantized:
        model = load_model_file(run_dir.model_path, custom_object_scope)
        return (*split_model(model), model)
    model_path = run_dir.model_path
    if not model_path.is_file():
        raise ModelError(f"{model_path} is missing; run `ich-edge qat --out {run_dir.path}` again")
    window = run_dir.sequence_config.window_slices
    if run_dir.config.get("import"):  # an imported run: the architecture is the user's (kept beside model.keras)
        from ich_edge.training.importer.quantize import FLOAT_MODEL_FILE, load_imported_qat_model

        encoder, head, model = load_imported_qat_model(load_model_file(run_dir.path / FLOAT_MODEL_FILE), window)
    else:
        encoder, head, model = build_qat_model(run_dir.model_config, window)
    try:
        model.load_weights(model_path)
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"{model_path} does not match the QAT architecture in config.json ({err}); "
                         "run `ich-edge qat` again into a new --out") from err
    return encoder, head, model
