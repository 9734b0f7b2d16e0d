"""``ich-edge bench`` on a tiny two-signature model built without TensorFlow.

The model is written with the flatbuffer schema that ships with ai-edge-litert: ``encode``
(CONV_2D -> MEAN -> FULLY_CONNECTED) and ``classify`` (UNIDIRECTIONAL_SEQUENCE_LSTM with its
variable state tensors -> FULLY_CONNECTED -> LOGISTIC), like the real model in miniature,
so these tests need no converter and run in seconds. They check that results are well
formed, never how fast anything is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ich_edge import LABELS
from ich_edge.errors import ConfigError
from ich_edge.runtime import coverage, flatbuffer
from ich_edge.runtime.bench import runner as bench
from ich_edge.runtime.bench.report import OP_PROFILE_UNAVAILABLE, format_profile, format_table

SIZE_PX, FEATURES, UNITS, WINDOW = 16, 4, 3, 4


def _tiny_model_bytes(precision: str, seed: int = 0) -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    from ich_edge.runtime.description import embed_description

    rng = np.random.default_rng(seed)
    buffers = [fb.BufferT()]  # buffer 0: the empty sentinel

    def const(array) -> int:
        buf = fb.BufferT()
        buf.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
        buffers.append(buf)
        return len(buffers) - 1

    def tensor(tensors, name, shape, kind=fb.TensorType.FLOAT32, data=None, signature=None, variable=False):
        t = fb.TensorT()
        t.name, t.shape, t.type = name, list(shape), kind
        t.shapeSignature = signature
        t.buffer = 0 if data is None else const(data)
        t.isVariable = variable
        tensors.append(t)
        return len(tensors) - 1

    codes = {}

    def op(code, inputs, outputs, options_type=0, options=None):
        if code not in codes:
            codes[code] = len(codes)
        o = fb.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = codes[code], list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = options_type, options
        return o

    def weights(*shape):
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    B = fb.BuiltinOperator
    # encode: image (B, S, S, 3) -> conv 3x3/2 relu -> mean -> fc -> features (B, F)
    enc = fb.SubGraphT()
    enc.tensors = []
    image = tensor(enc.tensors, "image", [1, SIZE_PX, SIZE_PX, 3], signature=[-1, SIZE_PX, SIZE_PX, 3])
    kernel = tensor(enc.tensors, "conv/w", [FEATURES, 3, 3, 3], data=weights(FEATURES, 3, 3, 3))
    bias = tensor(enc.tensors, "conv/b", [FEATURES], data=np.zeros(FEATURES, np.float32))
    conv = tensor(enc.tensors, "conv", [1, SIZE_PX // 2, SIZE_PX // 2, FEATURES], signature=[-1, SIZE_PX // 2, SIZE_PX // 2, FEATURES])
    axes = tensor(enc.tensors, "axes", [2], fb.TensorType.INT32, data=np.array([1, 2], np.int32))
    pooled = tensor(enc.tensors, "pooled", [1, FEATURES], signature=[-1, FEATURES])
    fc_w = tensor(enc.tensors, "fc/w", [FEATURES, FEATURES], data=weights(FEATURES, FEATURES))
    features = tensor(enc.tensors, "features", [1, FEATURES], signature=[-1, FEATURES])
    conv_options = fb.Conv2DOptionsT()
    conv_options.padding, conv_options.strideW, conv_options.strideH = fb.Padding.SAME, 2, 2
    conv_options.fusedActivationFunction = fb.ActivationFunctionType.RELU
    mean_options = fb.ReducerOptionsT()
    enc.operators = [
        op(B.CONV_2D, [image, kernel, bias], [conv], fb.BuiltinOptions.Conv2DOptions, conv_options),
        op(B.MEAN, [conv, axes], [pooled], fb.BuiltinOptions.ReducerOptions, mean_options),
        op(B.FULLY_CONNECTED, [pooled, fc_w, -1], [features], fb.BuiltinOptions.FullyConnectedOptions, fb.FullyConnectedOptionsT()),
    ]
    enc.inputs, enc.outputs, enc.name = [image], [features], "encode"

    # classify: features (1, T, F) -> LSTM (variable state) -> fc -> sigmoid -> (1, T, 6)
    cls = fb.SubGraphT()
    cls.tensors = []
    window = tensor(cls.tensors, "window", [1, WINDOW, FEATURES])
    gate_in = [tensor(cls.tensors, f"lstm/wi{g}", [UNITS, FEATURES], data=weights(UNITS, FEATURES)) for g in range(4)]
    gate_rec = [tensor(cls.tensors, f"lstm/wr{g}", [UNITS, UNITS], data=weights(UNITS, UNITS)) for g in range(4)]
    gate_bias = [tensor(cls.tensors, f"lstm/b{g}", [UNITS], data=np.zeros(UNITS, np.float32)) for g in range(4)]
    state_h = tensor(cls.tensors, "lstm/h", [1, UNITS], variable=True)
    state_c = tensor(cls.tensors, "lstm/c", [1, UNITS], variable=True)
    hidden = tensor(cls.tensors, "hidden", [1, WINDOW, UNITS])
    out_w = tensor(cls.tensors, "out/w", [len(LABELS), UNITS], data=weights(len(LABELS), UNITS))
    out_b = tensor(cls.tensors, "out/b", [len(LABELS)], data=np.zeros(len(LABELS), np.float32))
    logits = tensor(cls.tensors, "logits", [1, WINDOW, len(LABELS)])
    probs = tensor(cls.tensors, "probabilities", [1, WINDOW, len(LABELS)])
    lstm_options = fb.UnidirectionalSequenceLSTMOptionsT()
    lstm_options.fusedActivationFunction = fb.ActivationFunctionType.TANH
    fc_options = fb.FullyConnectedOptionsT()
    fc_options.keepNumDims = True
    lstm_inputs = [window, *gate_in, *gate_rec, -1, -1, -1, *gate_bias, -1, -1, state_h, state_c, -1, -1, -1, -1]
    cls.operators = [
        op(B.UNIDIRECTIONAL_SEQUENCE_LSTM, lstm_inputs, [hidden], fb.BuiltinOptions.UnidirectionalSequenceLSTMOptions, lstm_options),
        op(B.FULLY_CONNECTED, [hidden, out_w, out_b], [logits], fb.BuiltinOptions.FullyConnectedOptions, fc_options),
        op(B.LOGISTIC, [logits], [probs]),
    ]
    cls.inputs, cls.outputs, cls.name = [window], [probs], "classify"

    def signature(key, index, inputs, outputs):
        sig = fb.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex = key, index
        sig.inputs, sig.outputs = [], []
        for target, pairs in ((sig.inputs, inputs), (sig.outputs, outputs)):
            for name, tensor_index in pairs:
                entry = fb.TensorMapT()
                entry.name, entry.tensorIndex = name, tensor_index
                target.append(entry)
        return sig

    model = fb.ModelT()
    model.version, model.description = 3, "ich-edge bench test model"
    model.subgraphs, model.buffers = [enc, cls], buffers
    model.operatorCodes = []
    for code in sorted(codes, key=codes.get):
        entry = fb.OperatorCodeT()
        entry.builtinCode, entry.deprecatedBuiltinCode = code, min(code, 127)
        model.operatorCodes.append(entry)
    model.signatureDefs = [
        signature("encode", 0, [("image", image)], [("features", features)]),
        signature("classify", 1, [("features", window)], [("probabilities", probs)]),
    ]
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    description = {
        "format": "ich-edge-model/1",
        "labels": list(LABELS),
        "precision": precision,
        "sequence": {"window_slices": WINDOW, "stride_slices": WINDOW // 2},
        "thresholds": {level: {label: 0.5 for label in LABELS} for level in ("slice", "study")},
        # what every verb now checks before it runs a file (ich_edge.runtime.model_check.description_problem)
        "preprocessing": {"windows_hu": [[40.0, 80.0], [80.0, 200.0], [600.0, 2800.0]],
                          "window_names": ["brain", "subdural", "bone"], "input_size_px": SIZE_PX, "resize_method": "area"},
    }
    return embed_description(bytes(builder.Output()), description)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bench_models")
    paths = {}
    for seed, precision in enumerate(("fp32", "int8")):
        # The "int8" file is the same float graph labelled int8: it exercises the speed-up column.
        paths[precision] = folder / f"cnn_lstm_{precision}.tflite"
        paths[precision].write_bytes(_tiny_model_bytes(precision, seed))
    return paths


QUICK = dict(runs=3, warmup=1, study_slices=9)


@pytest.fixture(scope="module")
def stateless(tmp_path_factory) -> dict[str, Path]:
    """tests/tiny_app_model.py's stateless files (float and integer I/O): what accuracy work may use."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_app_model", Path(__file__).parents[1] / "tiny_app_model.py")
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    folder = tmp_path_factory.mktemp("stateless")
    paths = {"fp32": folder / "fp32.tflite", "int8": folder / "int8.tflite"}
    paths["fp32"].write_bytes(tiny.tiny_model_bytes(SIZE_PX, WINDOW, 2, quantized_io=False, precision="fp32"))
    paths["int8"].write_bytes(tiny.tiny_model_bytes(SIZE_PX, WINDOW, 2))
    return paths

#: What the GPU rows must say follows from the hardware, found independently of the bench code.
GPU_NODES = [p for p in ("/dev/nvidia0", "/dev/dri") if Path(p).exists()]
without_gpu = pytest.mark.skipif(bool(GPU_NODES), reason=f"GPU device nodes {GPU_NODES}: the no-GPU rows cannot be checked")
with_nvidia_gpu = pytest.mark.skipif(
    not Path("/dev/nvidia0").exists(), reason="needs an NVIDIA GPU (/dev/nvidia0); run on a GPU machine"
)


def test_tiny_model_runs_like_a_real_one(models):
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    # The bench model keeps LSTM state in variable tensors: only timing may open it.
    model = TFLiteStudyModel(models["fp32"], num_threads=1, timing_only=True)
    probs = model.predict_series(np.random.default_rng(0).integers(0, 256, (9, SIZE_PX, SIZE_PX, 3), dtype=np.uint8))
    assert probs.shape == (9, len(LABELS))
    assert np.all((probs > 0) & (probs < 1))


def test_latency_stats_counts_outliers_and_keeps_them():
    stats = bench.latency_stats([10.0, 10.1, 9.9, 10.0, 10.05, 50.0])
    assert stats["n"] == 6 and stats["outliers"] == 1
    assert stats["max"] == 50.0
    assert stats["mean"] > 16  # the outlier stays in the mean
    assert stats["p50"] == pytest.approx(10.025)
    with pytest.raises(ConfigError, match="no timed runs"):
        bench.latency_stats([])


def test_option_parsing_and_config_errors():
    assert bench.parse_threads("1, 2,2,4") == (1, 2, 4)
    assert bench.parse_backends("XNNPACK,reference") == ("xnnpack", "reference")
    with pytest.raises(ConfigError, match="did you mean 'xnnpack'"):
        bench.parse_backends("xnnpak")
    with pytest.raises(ConfigError, match="comma-separated integers"):
        bench.parse_threads("two")
    with pytest.raises(ConfigError, match=">= 1"):
        bench.parse_threads("0")
    with pytest.raises(ConfigError, match="--runs must be >= 2"):
        bench.BenchConfig(runs=1)


def test_coverage_walks_delegate_partitions(models):
    data = models["fp32"].read_bytes()
    xnn = coverage.xnnpack_coverage(data)
    ref = coverage.builtin_coverage(data)
    assert {k: c.total_nodes for k, c in ref.items()} == {"encode": 3, "classify": 3}
    assert all(c.delegated_nodes == 0 for c in ref.values())
    assert xnn["encode"].delegated_nodes == 3 and xnn["encode"].not_delegated == {}
    # XNNPACK has no LSTM kernel: the sequence op stays on the builtin kernels.
    assert xnn["classify"].not_delegated == {"UNIDIRECTIONAL_SEQUENCE_LSTM": 1}
    assert xnn["classify"].delegated_nodes == 2


def test_delegated_op_indices_on_a_hand_made_graph():
    ops = [
        {"index": 0, "op_name": "A", "inputs": [0], "outputs": [1]},
        {"index": 1, "op_name": "B", "inputs": [1, 9], "outputs": [2]},
        {"index": 2, "op_name": "C", "inputs": [2], "outputs": [3]},
        {"index": 3, "op_name": "DELEGATE", "inputs": [1, 9], "outputs": [3]},
    ]
    assert coverage.delegated_op_indices(ops) == {1, 2}


def test_macs_are_counted_from_shapes(models):
    macs = coverage.signature_macs(models["fp32"].read_bytes())
    conv = (SIZE_PX // 2) ** 2 * FEATURES * 3 * 3 * 3
    assert macs["encode"]["macs_by_op"] == {"CONV_2D": conv, "FULLY_CONNECTED": FEATURES * FEATURES}
    lstm = WINDOW * 4 * (UNITS * FEATURES + UNITS * UNITS)
    assert macs["classify"]["macs_by_op"]["UNIDIRECTIONAL_SEQUENCE_LSTM"] == lstm
    assert macs["classify"]["macs"] == lstm + WINDOW * len(LABELS) * UNITS


def test_single_signature_model_keeps_one_subgraph(models):
    part = coverage.single_signature_model(models["fp32"].read_bytes(), "classify")
    tree = coverage.read_model(part)
    assert flatbuffer.signature_subgraphs(tree) == {"classify": 0}
    assert coverage.op_types(tree, 0)[0] == "UNIDIRECTIONAL_SEQUENCE_LSTM"
    from ich_edge.errors import ModelError

    with pytest.raises(ModelError, match="no signature 'nope'"):
        coverage.single_signature_model(models["fp32"].read_bytes(), "nope")


def test_benchmark_rows_are_well_formed(models):
    config = bench.BenchConfig(threads=(1,), backends=("xnnpack", "reference"), **QUICK)
    result = bench.benchmark([models["fp32"], models["int8"]], config)
    assert result["format"] == bench.RESULT_FORMAT
    assert len(result["load_average_start_end"]) == 2
    machine = result["machine"]
    assert machine["cpu_model"] and machine["logical_cores"] >= 1
    assert machine["versions"]["ai-edge-litert"] and machine["versions"]["numpy"] and machine["versions"]["python"]
    rows = {(r["variant"], r["backend"]): r for r in result["rows"]}
    assert len(rows) == 4
    for variant in ("fp32", "int8"):
        for backend in ("xnnpack", "reference"):
            row = rows[(variant, backend)]
            assert row["status"] == "ok", row
            assert row["init_ms"] > 0 and row["first_inference_ms"] > 0
            for key in ("slice_latency_ms", "study_latency_ms"):
                stats = row[key]
                assert stats["n"] == QUICK["runs"]
                assert 0 < stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]
                assert stats["std"] >= 0 and stats["outliers"] >= 0
            assert row["stage_latency_ms"]["encode"]["p50"] > 0 and row["stage_latency_ms"]["classify"]["p50"] > 0
            assert row["study_windows"] == 4  # 9 slices, window 4, stride 2: starts 0, 2, 4, 5
            assert row["peak_rss_mb"] > 0 and row["study_cpu_ms"] > 0
            assert row["nodes"]["total_nodes"] == 6
            assert row["tensorflow_imported"] is False
            assert row["speedup_vs_fp32"] > 0
        assert rows[(variant, "xnnpack")]["nodes"]["delegated_nodes"] == 5
        assert rows[(variant, "reference")]["nodes"]["delegated_nodes"] == 0
    assert rows[("fp32", "xnnpack")]["speedup_vs_fp32"] == pytest.approx(1.0)
    model = result["models"][0]
    assert model["size_mb"] > 0 and model["macs"]["study"] > 0
    table = format_table(result)
    assert table.count("\nfp32 ") == 2 and "1.00x" in table
    profile = format_profile(result)
    assert OP_PROFILE_UNAVAILABLE in profile
    assert "classify: 2/3 nodes delegated; on builtin kernels: UNIDIRECTIONAL_SEQUENCE_LSTM x1" in profile
    assert bench.failed_rows(result) == []


@without_gpu
def test_gpu_rows_without_a_gpu_are_unavailable_with_one_note(stateless):
    config = bench.BenchConfig(threads=(1,), backends=("xnnpack", "gpu"), **QUICK)
    result = bench.benchmark([stateless["fp32"], stateless["int8"]], config)
    gpu = [r for r in result["rows"] if r["backend"] == "gpu"]
    assert [r["status"] for r in gpu] == ["unavailable", "unavailable"]
    assert "Variable tensors" in gpu[0]["reason"] or "WebGPU" in gpu[0]["reason"] or "Vulkan" in gpu[0]["reason"]
    assert gpu[0]["threads"] is None and gpu[0]["speedup_vs_fp32"] is None
    assert gpu[0]["reason"] == gpu[1]["reason"]
    table = format_table(result)
    assert table.count("unavailable [1]") == 2 and "\n[1] gpu: " in table and "[2]" not in table  # one note
    assert bench.failed_rows(result) == []  # unavailable is not a failure


@with_nvidia_gpu
def test_gpu_rows_measure_on_a_gpu(stateless):
    config = bench.BenchConfig(threads=(1,), backends=("gpu+cpu",), **QUICK)
    (row,) = bench.benchmark([stateless["fp32"]], config)["rows"]
    assert row["status"] == "ok", row.get("reason")
    classify_nodes = coverage.builtin_coverage(stateless["fp32"].read_bytes())["classify"].total_nodes
    assert row["nodes"]["signatures"]["classify"]["total_nodes"] == classify_nodes


def test_two_models_of_one_precision_keep_their_own_size_and_fp32(models, tmp_path):
    """Benchmarking two conversions side by side: each speed-up is against its own folder's fp32."""
    import shutil

    other = tmp_path / "other"
    other.mkdir()
    for precision in ("fp32", "int8"):
        shutil.copy(models[precision], other / models[precision].name)
    with open(other / "cnn_lstm_fp32.tflite", "ab") as f:
        f.write(b"\0" * 200_000)  # a bigger file, so a size taken from the wrong model shows
    paths = [models["fp32"], models["int8"], other / "cnn_lstm_fp32.tflite", other / "cnn_lstm_int8.tflite"]
    config = bench.BenchConfig(threads=(1,), backends=("xnnpack",), **QUICK)
    result = bench.benchmark(paths, config)
    rows = {row["path"]: row for row in result["rows"]}
    for folder in (models["fp32"].parent, other):
        fp32, int8 = rows[str(folder / "cnn_lstm_fp32.tflite")], rows[str(folder / "cnn_lstm_int8.tflite")]
        assert fp32["speedup_vs_fp32"] == pytest.approx(1.0)
        base = fp32["study_latency_ms"]["p50"]
        assert int8["speedup_vs_fp32"] == pytest.approx(base / int8["study_latency_ms"]["p50"])
    table = format_table(result)
    assert "fp32 #1" in table and "fp32 #3" in table and "int8 #2" in table and "int8 #4" in table
    assert f"#3: {other / 'cnn_lstm_fp32.tflite'}" in table
    assert "above the core count" not in format_table({**result, "load_average_start_end": [[0.5, 0.5, 0.5], [0.6, 0.5, 0.5]]})
    assert "above the core count" in format_table({**result, "load_average_start_end": [[0.5, 0.5, 0.5], [99.0, 9.0, 9.0]]})
    sizes = {line.split()[1]: float(line.split()[5]) for line in table.splitlines() if line.startswith("fp32 #")}
    assert sizes["#3"] > sizes["#1"] + 0.19


def test_study_auc_from_a_cache(models, stateless, tmp_path):
    from ich_edge.ingest.cache import Cache, CachedSeries
    from ich_edge.errors import ModelError
    from ich_edge.transforms import PreprocessConfig

    cache = Cache.create(tmp_path / "cache", PreprocessConfig(input_size_px=SIZE_PX))
    rng = np.random.default_rng(1)
    for i in range(6):
        labels = np.zeros(len(LABELS), np.int8)
        labels[[1, 5]] = i % 2
        brightness = rng.uniform(0.2, 1.0)  # studies differ, so the scores (and the AUC) do
        images = (rng.integers(0, 256, (5, SIZE_PX, SIZE_PX, 3)) * brightness).astype(np.uint8)
        slice_labels = np.tile(labels, (5, 1))
        cache.write(CachedSeries(f"1.2.{i}", f"1.3.{i}", images, slice_labels, labels, tuple(f"s{j}" for j in range(5))))
    with pytest.raises(ModelError, match="keeps state between invocations"):
        bench.study_auc(models["fp32"], cache.load_all(), threads=1)  # accuracy of a stateful file would be wrong
    auc = bench.study_auc(stateless["fp32"], cache.load_all(), threads=1)
    assert auc["studies"] == 6
    assert auc["per_label"]["epidural"] is None  # no positive epidural study
    # The expected AUC from its definition: P(score of a positive study > score of a negative), ties 1/2.
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    model = TFLiteStudyModel(stateless["fp32"], num_threads=1)
    scores = [model.study_probabilities(s.images) for s in cache.load_all()]
    truth = [s.study_labels for s in cache.load_all()]
    for i, label in ((5, "any"), (1, "intraparenchymal")):
        pos = [sc[i] for sc, t in zip(scores, truth) if t[i]]
        neg = [sc[i] for sc, t in zip(scores, truth) if not t[i]]
        expected = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg])
        assert len(pos) == 3 and len(neg) == 3
        assert auc["per_label"][label] == pytest.approx(expected)
    assert auc["any"] == auc["per_label"]["any"]
    assert auc["mean"] == pytest.approx(np.mean([auc["per_label"]["intraparenchymal"], auc["any"]]))


def test_rounds_pool_samples(models):
    config = bench.BenchConfig(threads=(1,), backends=("xnnpack",), rounds=2, **QUICK)
    (xnn,) = bench.benchmark([models["fp32"]], config)["rows"]
    assert xnn["rounds"] == 2 and len(xnn["round_study_p50_ms"]) == 2
    assert xnn["study_latency_ms"]["n"] == 2 * QUICK["runs"] and len(xnn["samples_ms"]["study"]) == 2 * QUICK["runs"]
    assert xnn["study_latency_ms"]["min"] == min(xnn["samples_ms"]["study"])
    with pytest.raises(ConfigError, match="--rounds must be >= 1"):
        bench.BenchConfig(rounds=0)


def test_an_unavailable_backend_is_asked_once_over_rounds(models, monkeypatch):
    asked = []

    def fake(path, backend, threads, config):
        asked.append(backend)
        return {"status": "unavailable", "reason": "no GPU here"}

    monkeypatch.setattr(bench, "run_configuration", fake)
    config = bench.BenchConfig(threads=(1,), backends=("gpu",), rounds=3, **QUICK)
    (gpu,) = bench.benchmark([models["fp32"]], config)["rows"]
    assert asked == ["gpu"] and gpu["rounds"] == 1 and gpu["status"] == "unavailable"


def test_gpu_encoder_model_runs_encode_on_a_compiled_model_and_classify_on_the_interpreter(stateless):
    """The gpu+cpu path (encode on a LiteRT CompiledModel, classify on XNNPACK), run on LiteRT's
    CPU accelerator so it is checked here: it must predict what the interpreter predicts."""
    from ich_edge.runtime.bench.gpu import GpuEncoderStudyModel
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    images = np.random.default_rng(3).integers(0, 256, (9, SIZE_PX, SIZE_PX, 3), dtype=np.uint8)
    for precision in ("fp32", "int8"):
        reference = TFLiteStudyModel(stateless[precision], num_threads=1)
        hybrid = GpuEncoderStudyModel(stateless[precision], num_threads=1, accelerator="cpu")
        assert hybrid.accelerated is not None and hybrid.encode_batch == 1
        calls = []
        run_batch = hybrid.accelerated.run_batch
        hybrid.accelerated.run_batch = lambda signature, array: calls.append(array.shape) or run_batch(signature, array)
        expected, found = reference.predict_series(images), hybrid.predict_series(images)
        assert found.shape == (9, len(LABELS))
        np.testing.assert_allclose(found, expected, atol=1e-6)
        assert calls and set(calls) == {(1, SIZE_PX, SIZE_PX, 3)}  # every slice went through the compiled model, one per call


def test_gpu_plus_cpu_rows_keep_their_threads(models):
    config = bench.BenchConfig(threads=(1, 2), backends=("gpu+cpu", "gpu"), **QUICK)
    result = bench.benchmark([models["fp32"]], config)
    rows = [(r["backend"], r["threads"]) for r in result["rows"]]
    assert rows == [("gpu+cpu", 1), ("gpu+cpu", 2), ("gpu", None)]  # threads are the CPU part's
    assert "gpu+cpu" in format_table(result)


@without_gpu
def test_gpu_plus_cpu_without_a_gpu_says_the_encoder_cannot_run(stateless):
    config = bench.BenchConfig(threads=(1,), backends=("gpu+cpu",), **QUICK)
    (hybrid,) = bench.benchmark([stateless["fp32"]], config)["rows"]
    assert hybrid["status"] == "unavailable" and "encode" in hybrid["reason"]
    assert "classify" not in hybrid["reason"]  # only the encoder is asked of the GPU


def test_gpu_names_come_from_the_nvidia_driver(tmp_path):
    from ich_edge.runtime.bench.sysinfo import gpu_names

    card = tmp_path / "0000:01:00.0"
    card.mkdir()
    (card / "information").write_text("Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   139\n")
    (tmp_path / "0000:02:00.0").mkdir()  # no information file: skipped
    assert gpu_names(tmp_path) == ["NVIDIA H100 80GB HBM3"]
    assert gpu_names(tmp_path / "absent") == []


def test_worker_peak_memory_is_its_own(models):
    """A worker's peak RSS must not count the parent's memory at fork time (ru_maxrss does)."""
    ballast = np.ones(25_000_000)  # 200 MB resident in this (parent) process
    row = bench.run_configuration(models["fp32"], "xnnpack", 1, bench.BenchConfig(runs=2, warmup=0, study_slices=5))
    assert row["status"] == "ok"
    assert 0 < row["peak_rss_mb"] < 150, row["peak_rss_mb"]
    assert ballast[-1] == 1.0


def test_cli_runs_with_tensorflow_blocked(stateless, tmp_path):
    """The bench verb and its worker processes run on the base install: TensorFlow is made unimportable."""
    blocker = tmp_path / "blocker" / "tensorflow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('tensorflow is blocked in this test')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker.parent), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "result.json"
    command = [
        sys.executable, "-m", "ich_edge", "bench", "--model", str(stateless["fp32"]), "--threads", "1", "--backend", "xnnpack,gpu",
        "--runs", "2", "--warmup", "0", "--study-slices", "5", "--out", str(out), "--out", str(tmp_path / "results"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert [r["backend"] for r in result["rows"]] == ["xnnpack", "gpu"]
    assert result["rows"][0]["status"] == "ok" and result["rows"][0]["tensorflow_imported"] is False
    written = list((tmp_path / "results").glob(f"bench_*_{result['machine']['host']}.json"))
    assert len(written) == 1
    assert "fp32" in done.stdout and "study ms p50" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "result.json", "results"]  # nothing else written


def test_cli_rejects_a_missing_model(tmp_path, capsys):
    from ich_edge.cli import main

    code = main(["bench", "--model", str(tmp_path / "missing.tflite"), "--backend", "xnnpack"])
    assert code == 3
    assert "does not exist" in capsys.readouterr().err


def test_cli_writes_nothing_unless_asked(models, tmp_path, monkeypatch, capsys):
    from ich_edge.cli import main

    results = Path(bench.__file__).resolve().parents[3] / "benchmarks" / "results"
    before = sorted(results.iterdir()) if results.is_dir() else []
    monkeypatch.chdir(tmp_path)
    code = main(["bench", "--model", str(models["fp32"]), "--backend", "xnnpack", "--threads", "1", "--runs", "2", "--warmup", "0",
                 "--study-slices", "4"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "study ms p50" in captured.out and "wrote" not in captured.err
    assert list(tmp_path.iterdir()) == []
    assert (sorted(results.iterdir()) if results.is_dir() else []) == before  # no default into the repo


def test_cli_exits_3_when_a_requested_row_failed_and_still_writes_the_json(models, tmp_path, monkeypatch, capsys):
    from ich_edge.cli import main

    measure = bench.run_configuration

    def reference_crashes(path, backend, threads, config):
        if backend == "reference":
            return {"status": "failed", "reason": "worker exited with code -11: Segmentation fault"}
        return measure(path, backend, threads, config)

    monkeypatch.setattr(bench, "run_configuration", reference_crashes)
    out = tmp_path / "r.json"
    code = main(["bench", "--model", str(models["fp32"]), "--backend", "xnnpack,reference", "--threads", "1", "--runs", "2",
                 "--warmup", "0", "--study-slices", "4", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 3
    assert captured.err.strip().splitlines()[-1] == (
        "ich-edge: error: 1 of 2 rows failed to measure: cnn_lstm_fp32.tflite reference threads=1: "
        "worker exited with code -11: Segmentation fault"
    )
    rows = json.loads(out.read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok", "failed"]  # the result is kept for the record


def test_failed_rows_counts_failures_and_failed_rounds_not_unavailable():
    rows = [
        {"file": "a.tflite", "backend": "xnnpack", "threads": 1, "status": "ok", "rounds": 2},
        {"file": "a.tflite", "backend": "reference", "threads": 1, "status": "ok", "rounds": 3,
         "failed_rounds": ["timed out after 900 s"]},
        {"file": "a.tflite", "backend": "gpu", "threads": None, "status": "unavailable", "reason": "no GPU"},
        {"file": "a.tflite", "backend": "gpu+cpu", "threads": 2, "status": "failed", "reason": "boom"},
    ]
    assert bench.failed_rows({"rows": rows}) == [
        "a.tflite reference threads=1: 1 of 3 rounds failed (timed out after 900 s)",
        "a.tflite gpu+cpu threads=2: boom",
    ]


def test_the_profile_keeps_apart_two_files_of_one_name_in_two_folders(stateless, tmp_path):
    """paper_model.py benches each model's cnn_lstm_fp32.tflite from two folders: each keeps its own MACs and ops."""
    import shutil

    paths = []
    for folder, source in (("float", stateless["fp32"]), ("integer", stateless["int8"])):
        (tmp_path / folder).mkdir()
        paths.append(Path(shutil.copy(source, tmp_path / folder / "model.tflite")))
    result = bench.benchmark(paths, bench.BenchConfig(threads=(1,), backends=("xnnpack",), **QUICK))
    profile = format_profile(result)
    assert "float/model.tflite on xnnpack" in profile and "integer/model.tflite on xnnpack" in profile
    blocks = profile.split("integer/model.tflite on xnnpack")
    assert "QUANTIZE" not in blocks[0] and "QUANTIZE" in blocks[1]  # each block its own file's op table
