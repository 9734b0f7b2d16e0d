"""Pretrained backbone weights from a local file, the in-encoder input scaling, presets."""

from __future__ import annotations

import numpy as np
import pytest

from ich_edge.errors import ConfigError, ModelError
from ich_edge.training.keras import keras
from ich_edge.training.model import PRESETS, ModelConfig, backbone_model, build_encoder, load_backbone_weights


def _backbone_output(encoder, name):
    return keras.Model(encoder.input, encoder.get_layer(name).output)


def test_edge_backbone_weights_round_trip(tmp_path):
    config = ModelConfig(width=0.25, input_size_px=32)
    reference = backbone_model(config)
    for layer in reference.layers:  # weights no fresh build would have
        layer.set_weights([np.random.default_rng(len(w.shape)).normal(size=w.shape).astype(np.float32) for w in layer.get_weights()])
    path = tmp_path / "edge.weights.h5"
    reference.save_weights(str(path))
    encoder = build_encoder(config)
    image = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    assert not np.allclose(_backbone_output(encoder, "top_relu")(image), reference(image))
    assert load_backbone_weights(encoder, config, path) == sum(1 for layer in reference.layers if layer.get_weights())
    np.testing.assert_allclose(_backbone_output(encoder, "top_relu")(image), reference(image), rtol=1e-5, atol=1e-5)


def test_mobilenetv2_weights_load_and_input_is_scaled_to_minus1_1(tmp_path):
    """The encoder takes [0, 1]; its MobileNetV2 sees [-1, 1], as keras.applications' ImageNet weights expect."""
    config = ModelConfig(backbone="mobilenetv2", width=0.35, input_size_px=32)
    reference = backbone_model(config)  # exactly keras.applications.MobileNetV2(include_top=False)
    path = tmp_path / "mobilenet_v2_no_top.h5"
    reference.save_weights(str(path))
    encoder = build_encoder(config)
    assert load_backbone_weights(encoder, config, path) > 50
    image = np.random.default_rng(1).random((2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(_backbone_output(encoder, "out_relu")(image), reference(image * 2.0 - 1.0), rtol=1e-4, atol=1e-4)
    scaling = encoder.get_layer("input_scaling")
    assert not scaling.trainable and scaling not in [l for l in encoder.layers if l.trainable_weights]


def test_backbone_weights_errors(tmp_path):
    config = ModelConfig(width=0.25, input_size_px=32)
    with pytest.raises(ConfigError, match="not a file"):
        load_backbone_weights(build_encoder(config), config, tmp_path / "missing.h5")
    other = ModelConfig(width=0.5, input_size_px=32)
    path = tmp_path / "wide.weights.h5"
    backbone_model(other).save_weights(str(path))
    with pytest.raises(ModelError, match="does not fit|other shapes"):
        load_backbone_weights(build_encoder(config), config, path)


def test_presets_are_valid_model_configs():
    assert ModelConfig(**PRESETS["demo"]) == ModelConfig()
    mobile = ModelConfig(**PRESETS["mobile"])
    assert (mobile.backbone, mobile.width, mobile.input_size_px) == ("mobilenetv2", 1.0, 256)


def test_preset_must_match_the_cache_size(tiny_cache, tmp_path, capsys):
    from ich_edge.cli import main

    code = main(["train", "--data", str(tiny_cache.root), "--out", str(tmp_path / "RUN"), "--preset", "mobile"])
    assert code == 2
    assert "--input-size-px 256" in capsys.readouterr().err
