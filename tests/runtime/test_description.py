"""The embedded model description and the op summary, read without TensorFlow."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ich_edge.errors import ModelError
from ich_edge.runtime.description import (
    DESCRIPTION_KEY,
    custom_ops,
    embed_description,
    format_op_summary,
    op_summary,
    read_description,
    sidecar_path,
)
from ich_edge.runtime.flatbuffer import WEIGHTS_DIGEST_KEY


def _tiny_app_model():
    # tests/tiny_app_model.py (a TF-free two-signature model) is shared; tests/ is not a package.
    spec = importlib.util.spec_from_file_location("tiny_app_model", Path(__file__).parents[1] / "tiny_app_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny = _tiny_app_model()


def _repack(data: bytes, edit) -> bytes:
    """``data`` with ``edit(model_t)`` applied, packed without any ich-edge step."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(data, 0)
    edit(model)
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _strip_description(data: bytes) -> bytes:
    def edit(model):
        model.metadata = [m for m in model.metadata if m.name.decode() != DESCRIPTION_KEY]

    return _repack(data, edit)


def _run_both_signatures(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    encode = interpreter.get_signature_runner("encode")
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    if encode.get_input_details()["image"]["dtype"] == np.float32:
        images = images.astype(np.float32) / 255.0
    features = encode(image=images)["features"]
    classify = interpreter.get_signature_runner("classify")
    window = np.resize(features, (1, 4, features.shape[-1])).astype(features.dtype)
    return features, classify(features=window)["probabilities"]


def test_round_trip_from_bytes_and_path(tmp_path):
    description = {"format": "ich-edge-model/1", "precision": "int8", "labels": ["a", "b"], "nested": {"x": [1, 2.5]}}
    data = embed_description(_strip_description(tiny.tiny_model_bytes()), description)
    assert read_description(data) == description
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    assert read_description(path) == description
    assert sidecar_path(path) == tmp_path / "m.tflite.json"


def test_embedding_again_replaces_the_description():
    data = embed_description(tiny.tiny_model_bytes(), {"precision": "first"})
    data = embed_description(data, {"precision": "second"})
    assert read_description(data) == {"precision": "second"}
    from ai_edge_litert import schema_py_generated as fb

    names = [m.name.decode() for m in fb.ModelT.InitFromPackedBuf(data, 0).metadata]
    assert names.count(DESCRIPTION_KEY) == 1


def test_embedding_again_keeps_the_size_and_the_weights_digest():
    """The replaced description's buffer goes (it grew the file by its own size on every embed)."""
    from ich_edge.runtime import flatbuffer

    once = embed_description(tiny.tiny_model_bytes(), {"precision": "first", "notes": "x" * 4000})
    twice = embed_description(once, {"precision": "first", "notes": "x" * 4000})
    assert len(twice) == len(once)
    digests = [flatbuffer.recorded_weights_digest(flatbuffer.unpack(data)) for data in (once, twice)]
    assert digests[0] == digests[1] == flatbuffer.weights_digest(flatbuffer.unpack(twice))


@pytest.mark.parametrize("quantized_io", [True, False])
def test_embedding_does_not_change_what_the_model_computes(quantized_io):
    original = _strip_description(tiny.tiny_model_bytes(quantized_io=quantized_io))
    for compact in (False, True):
        embedded = embed_description(original, {"precision": "x"}, compact=compact)
        for before, after in zip(_run_both_signatures(original), _run_both_signatures(embedded)):
            np.testing.assert_array_equal(before, after)


def test_compact_shares_identical_vectors_and_shortens_fused_names():
    def edit(model):
        for tensor in model.subgraphs[0].tensors:
            tensor.name = f"slice_encoder/quant_{tensor.name.decode()};slice_encoder/quant_bn/FusedBatchNormV3".encode()

    data = _repack(tiny.tiny_model_bytes(), edit)
    plain = embed_description(data, {}, compact=False)
    compact = embed_description(data, {}, compact=True)
    assert len(compact) < len(plain)
    from ai_edge_litert.interpreter import Interpreter

    names = {t["name"] for t in Interpreter(model_content=compact).get_tensor_details()}
    assert "slice_encoder/image" in names
    assert not any(";" in n or "quant_" in n for n in names)


def test_missing_description_says_how_to_fix(tmp_path):
    path = tmp_path / "plain.tflite"
    path.write_bytes(_strip_description(tiny.tiny_model_bytes()))
    with pytest.raises(ModelError, match=r"plain\.tflite is not an ich-edge model.*convert it with ich-edge convert"):
        read_description(path)


def test_not_a_tflite_file(tmp_path):
    path = tmp_path / "notes.tflite"
    path.write_text("hello, not a flatbuffer")
    with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
        read_description(path)
    with pytest.raises(ModelError, match="cannot read model file"):
        read_description(tmp_path / "missing.tflite")


def test_op_summary_per_signature():
    summary = op_summary(tiny.tiny_model_bytes(quantized_io=True))
    assert set(summary) == {"encode", "classify"}
    encode = summary["encode"]["ops"]
    assert encode["MEAN"]["count"] == 1 and encode["MEAN"]["float"] == 1
    assert encode["DEQUANTIZE"]["conversion"] == 1 and encode["QUANTIZE"]["conversion"] == 1
    assert encode["FULLY_CONNECTED"]["weight_dtypes"] == ["float32"]
    assert summary["classify"]["ops"]["LOGISTIC"]["count"] == 1
    assert summary["classify"]["weight_bytes"]["float32"] == (6 * 4 + 6) * 4  # fc2 weights and bias
    assert custom_ops(summary) == []
    text = format_op_summary(summary)
    assert "encode" in text and "FULLY_CONNECTED" in text and "(constant tensors)" in text


def test_op_summary_flags_custom_and_flex_ops():
    def edit(model):
        model.operatorCodes[0].builtinCode = 32  # BuiltinOperator.CUSTOM
        model.operatorCodes[0].deprecatedBuiltinCode = 32
        model.operatorCodes[0].customCode = "FlexStringSplit"
        # as converted with that op: no digest of the original ops (it would refuse the edit)
        model.metadata = [m for m in model.metadata if m.name not in (WEIGHTS_DIGEST_KEY, WEIGHTS_DIGEST_KEY.encode())]

    summary = op_summary(_repack(tiny.tiny_model_bytes(), edit))
    assert custom_ops(summary) == ["CUSTOM:FlexStringSplit"]


def test_description_and_summary_without_tensorflow(tmp_path):
    description = {"format": "ich-edge-model/1", "precision": "qat-int8", "thresholds": {"study": {"any": 0.4}}}
    path = tmp_path / "model.tflite"
    path.write_bytes(embed_description(tiny.tiny_model_bytes(), description))
    script = textwrap.dedent(
        """
        import json, sys
        for name in ("tensorflow", "tf_keras", "keras"):
            sys.modules[name] = None  # any import of them now fails
        from ich_edge.runtime.description import op_summary, read_description
        print(json.dumps({"description": read_description(sys.argv[1]),
                          "ops": sorted(op_summary(sys.argv[1])["encode"]["ops"]),
                          "tf": [m for m in sys.modules if m.startswith("tensorflow") and sys.modules[m] is not None]}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["description"] == description
    assert result["ops"] == ["DEQUANTIZE", "FULLY_CONNECTED", "MEAN", "QUANTIZE"]
    assert result["tf"] == []
