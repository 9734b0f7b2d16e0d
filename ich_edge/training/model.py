"""The CNN-LSTM: a slice encoder (2-D CNN), a recurrent head across slices, and their assembly.

* ``build_encoder``: a functional model of its own, ``image (B, S, S, 3) in [0, 1]`` ->
  ``features (B, feature_dim)``. Kept flat (no nested models) and made of layers that
  tensorflow-model-optimization can quantize (Conv2D/DepthwiseConv2D -> BatchNormalization
  -> ReLU6, Add, GlobalAveragePooling2D, Dense), so QAT can wrap it later.
* ``build_head``: ``features (B, T, feature_dim)`` -> bidirectional LSTM (or GRU) ->
  ``probabilities (B, T, 6)``, sigmoid per label.
* ``build_cnn_lstm``: ``window (B, T, S, S, 3)`` -> TimeDistributed(encoder) -> head.

Input values are the uint8 window images divided by 255 (the ``value scaling`` of the app
manifest); the narrow ``feature_dim`` keeps the LSTM's float weights small after conversion.
A backbone that expects other input values (MobileNetV2: [-1, 1]) gets them from a fixed
layer inside the encoder (``input_scaling``: a frozen 1x1 depthwise convolution, weight 2,
bias -1, which TFMOT can quantize and TFLite converts), so the deployed model still takes
[0, 1] and QAT and conversion keep the scaling.

Pretrained backbones: :func:`load_backbone_weights` copies the weights of a local file
(e.g. keras.applications' MobileNetV2 ImageNet ``..._no_top.h5``, downloaded elsewhere; no
network at run time) into the encoder's backbone layers by name. :data:`PRESETS` name
ready-made architectures: ``demo`` (the defaults) and ``mobile`` (MobileNetV2 1.0, 256 px).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ich_edge import LABELS
from pathlib import Path

import numpy as np

from ich_edge.errors import ConfigError, ModelError
from ich_edge.training.keras import keras

MODEL_VERSION = "cnn-lstm-1"
BACKBONES = ("edge", "mobilenetv2", "imported")
RNNS = ("lstm", "gru", "simple_rnn", "mixed", "none")
ENCODER_NAME, HEAD_NAME, FULL_NAME = "slice_encoder", "sequence_head", "cnn_lstm"
SCALING_NAME = "input_scaling"

#: Named architectures (``ich-edge train --preset``): ModelConfig fields over the defaults.
PRESETS = {
    # The synthetic demo: half-width edge backbone at 128 px (about 10 min of CPU training).
    "demo": {},
    # Real data (RSNA 2019): MobileNetV2 1.0 at 256 px, wider features and head; start it
    # from ImageNet weights with --backbone-weights.
    "mobile": {"backbone": "mobilenetv2", "width": 1.0, "input_size_px": 256, "feature_dim": 128, "rnn_units": 64},
}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the CNN-LSTM.

    Attributes
    ----------
    backbone : "edge" (default, ~10 M multiply-accumulates per 128 px slice at width 1),
        "mobilenetv2" (keras.applications, weights=None, ``width`` is its alpha), or
        "imported" (a user's model brought in by ``ich-edge import``; only
        ``input_size_px``, ``feature_dim`` and ``rnn`` describe it).
    input_size_px : side of the square slice input.
    width : channel multiplier of the backbone (default 0.5: as accurate as 1.0 on the
        synthetic demo set for half the training time on CPU).
    feature_dim : features per slice entering the recurrent head.
    rnn : "lstm" or "gru"; ``rnn_units`` per direction (an imported head may also be
        "simple_rnn", "mixed" (stacked layers of different kinds) or "none").
    dropout : dropout rate before the recurrent head and before the classifier.
    """

    backbone: str = "edge"
    input_size_px: int = 128
    width: float = 0.5
    feature_dim: int = 64
    rnn: str = "lstm"
    rnn_units: int = 32
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.rnn not in RNNS:
            raise ConfigError(f"rnn must be one of {RNNS}, got {self.rnn!r}")
        if self.backbone == "imported":  # a model built elsewhere (`ich-edge import`): any size the cache allows
            if not 8 <= self.input_size_px <= 1024:
                raise ConfigError(f"input_size_px must be in 8..1024, got {self.input_size_px}")
        elif self.rnn not in ("lstm", "gru"):
            raise ConfigError(f"rnn {self.rnn!r} is only for imported models (backbone 'imported'); use lstm or gru")
        elif not 32 <= self.input_size_px <= 512 or self.input_size_px % 32:
            raise ConfigError(f"input_size_px must be a multiple of 32 in 32..512, got {self.input_size_px}")
        if not 0.1 <= self.width <= 4.0:
            raise ConfigError(f"width must be in 0.1..4.0, got {self.width}")
        if self.feature_dim < 4 or self.rnn_units < 2:
            raise ConfigError("feature_dim must be >= 4 and rnn_units >= 2")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def scaled_channels(base: int, width: float) -> int:
    """``base`` channels at width multiplier ``width``, rounded to a multiple of 8 (at least 8)."""
    return max(8, int(round(base * width / 8.0)) * 8)


def conv_bn_relu(x, filters: int, kernel: int, strides: int, name: str):
    """Conv2D (no bias) -> BatchNormalization -> ReLU6, the order the converter folds BN in."""
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x)


def _inverted_residual(x, filters: int, strides: int, expansion: int, name: str):
    """MobileNetV2 block: 1x1 expand -> 3x3 depthwise -> 1x1 linear projection (+ skip)."""
    in_channels = x.shape[-1]
    y = conv_bn_relu(x, in_channels * expansion, 1, 1, f"{name}_expand")
    y = keras.layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw")(y)
    y = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(y)
    y = keras.layers.ReLU(6.0, name=f"{name}_dw_relu")(y)
    y = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(y)
    y = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_project_bn")(y)
    if strides == 1 and in_channels == filters:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


#: (output channels, stride, expansion) of the edge backbone's blocks after the stem.
EDGE_BLOCKS = ((16, 1, 1), (24, 2, 4), (24, 1, 4), (32, 2, 4), (32, 1, 4), (64, 2, 4), (64, 1, 4), (96, 2, 4))


def _edge_backbone(image, width: float):
    x = conv_bn_relu(image, scaled_channels(16, width), 3, 2, "stem")
    for i, (filters, strides, expansion) in enumerate(EDGE_BLOCKS):
        x = _inverted_residual(x, scaled_channels(filters, width), strides, expansion, f"block{i + 1}")
    return conv_bn_relu(x, scaled_channels(192, width), 1, 1, "top")


def _input_scaling(image, scale: float, offset: float):
    """``image * scale + offset`` as a frozen 1x1 depthwise convolution (quantizable, convertible)."""
    layer = keras.layers.DepthwiseConv2D(
        1, use_bias=True, name=SCALING_NAME, trainable=False,
        depthwise_initializer=keras.initializers.Constant(scale), bias_initializer=keras.initializers.Constant(offset),
    )
    return layer(image)


def _mobilenetv2_backbone(image, width: float):
    scaled = _input_scaling(image, 2.0, -1.0)  # [0, 1] -> [-1, 1], what keras.applications' weights expect
    base = keras.applications.MobileNetV2(
        input_tensor=scaled, alpha=width, include_top=False, weights=None, pooling=None
    )
    return base.output


def backbone_model(config: ModelConfig):
    """The backbone alone, layer names as in the encoder: for mobilenetv2 exactly
    ``keras.applications.MobileNetV2(include_top=False)`` (the layout of its ImageNet files)."""
    size = config.input_size_px
    if config.backbone == "mobilenetv2":
        return keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=config.width, include_top=False, weights=None)
    image = keras.Input((size, size, 3), name="image")
    return keras.Model(image, _edge_backbone(image, config.width), name=f"{config.backbone}_backbone")


def load_backbone_weights(encoder, config: ModelConfig, path: str | Path) -> int:
    """Copy the backbone weights in the local file ``path`` into ``encoder``; returns the number of layers set.

    ``path`` is a Keras weights file (``.h5`` or ``.weights.h5``) of :func:`backbone_model`,
    e.g. keras.applications' ``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5``
    for mobilenetv2 at width 1.0 (convolution weights fit any input size).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--backbone-weights {path} is not a file; download the weights file and pass its path")
    reference = backbone_model(config)
    try:
        reference.load_weights(str(path))
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(
            f"{path} does not fit the {config.backbone} backbone at width {config.width} ({err}); "
            "pass the weights of the same backbone and width (ImageNet no_top file for mobilenetv2)"
        ) from err
    count = 0
    for layer in reference.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        try:
            target = encoder.get_layer(layer.name)
        except ValueError as err:
            raise ModelError(f"the encoder has no layer {layer.name!r} of the {config.backbone} backbone") from err
        if [w.shape for w in target.get_weights()] != [w.shape for w in weights]:
            raise ModelError(f"layer {layer.name!r} of {path} has other shapes than the encoder's")
        target.set_weights([np.asarray(w) for w in weights])
        count += 1
    return count


def build_encoder(config: ModelConfig):
    """The slice encoder: ``image (B, S, S, 3)`` in [0, 1] -> ``features (B, feature_dim)``."""
    size = config.input_size_px
    image = keras.Input((size, size, 3), name="image")
    backbone = _edge_backbone if config.backbone == "edge" else _mobilenetv2_backbone
    x = backbone(image, config.width)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    features = keras.layers.Dense(config.feature_dim, activation="relu", name="features")(x)
    return keras.Model(image, features, name=ENCODER_NAME)


def build_head(config: ModelConfig, window_slices: int | None = None):
    """The recurrent head: ``features (B, T, feature_dim)`` -> ``probabilities (B, T, 6)``."""
    features = keras.Input((window_slices, config.feature_dim), name="features")
    x = keras.layers.Dropout(config.dropout, name="feature_dropout")(features)
    cell = keras.layers.LSTM if config.rnn == "lstm" else keras.layers.GRU
    x = keras.layers.Bidirectional(cell(config.rnn_units, return_sequences=True), name=f"bi{config.rnn}")(x)
    x = keras.layers.Dropout(config.dropout, name="head_dropout")(x)
    # float32 even under a mixed-precision policy: the loss clips at 1 - 1e-7, which is 1.0 in float16.
    probabilities = keras.layers.Dense(len(LABELS), activation="sigmoid", name="probabilities", dtype="float32")(x)
    return keras.Model(features, probabilities, name=HEAD_NAME)


def build_cnn_lstm(encoder, head, window_slices: int | None = None):
    """``window (B, T, S, S, 3)`` -> TimeDistributed(encoder) -> head -> ``(B, T, 6)``."""
    size = encoder.input_shape[1]
    window = keras.Input((window_slices, size, size, 3), name="window")
    features = keras.layers.TimeDistributed(encoder, name="encode_slices")(window)
    probabilities = head(features)
    return keras.Model(window, probabilities, name=FULL_NAME)


def build_model(config: ModelConfig, window_slices: int | None = None):
    """Encoder, head and the assembled CNN-LSTM, sharing weights."""
    encoder = build_encoder(config)
    head = build_head(config, window_slices)
    return encoder, head, build_cnn_lstm(encoder, head, window_slices)


def split_model(model):
    """The (encoder, head) inside a CNN-LSTM built by :func:`build_cnn_lstm` (or loaded)."""
    try:
        encoder = model.get_layer("encode_slices").layer
        head = model.get_layer(HEAD_NAME)
    except ValueError as err:
        raise ConfigError(f"{model.name} is not an ich-edge CNN-LSTM (no encode_slices/sequence_head)") from err
    return encoder, head
