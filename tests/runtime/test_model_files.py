"""Damaged and foreign model files are one ModelError (exit 3, one line) in every runtime verb.

Uses the committed, converted android_demo_assets/model.tflite. The fuzz has two halves:
damaged bytes through the Python readers in this process (check_model_file,
read_description, op_summary), and the damaged files that pass check_model_file through
LiteRT in a subprocess, because LiteRT's C++ loader does not verify flatbuffers and could
end the process instead of raising; a crash there is reported as a failure, not hidden.
"""

from __future__ import annotations

import functools
import json
import random
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ich_edge.cli import main
from ich_edge.errors import ModelError
from ich_edge.runtime.description import op_summary, read_description
from ich_edge.runtime.model_check import check_model_file
from ich_edge.runtime.tflite_model import TFLiteStudyModel

REAL_MODEL = Path(__file__).parents[2] / "android_demo_assets" / "model.tflite"


@pytest.fixture(scope="module")
def real_bytes() -> bytes:
    return REAL_MODEL.read_bytes()


def _repacked(data: bytes, edit) -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(data, 0)
    edit(model)
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _drop_digest(model) -> None:
    """Remove the weights digest: a file from another converter, or one converted before the digest."""
    from ich_edge.runtime.flatbuffer import WEIGHTS_DIGEST_KEY

    model.metadata = [m for m in model.metadata or [] if m.name not in (WEIGHTS_DIGEST_KEY, WEIGHTS_DIGEST_KEY.encode())]


def _rename_signature(model, old: str, new: str) -> None:
    _drop_digest(model)  # a foreign file: what it lacks must be named, not a digest it never had
    for sig in model.signatureDefs:
        if sig.signatureKey in (old, old.encode()):
            sig.signatureKey = new


def _weight_byte_flipped(data: bytes) -> bytes:
    """The model with its weights digest embedded, then one bit of its largest weight flipped.

    Such a file parses, passes every size and index check and runs: only the digest that
    ``ich-edge convert`` records (``ich_edge.runtime.flatbuffer.weights_digest``) tells.
    """
    import numpy as np

    from ich_edge.runtime import flatbuffer
    from ich_edge.runtime.description import embed_description

    signed = embed_description(data, read_description(data))
    model = flatbuffer.unpack(signed)
    weights = {t.buffer for s in model.subgraphs for t in s.tensors}
    raw = max((np.asarray(model.buffers[i].data, np.uint8).tobytes() for i in weights
               if model.buffers[i].data is not None), key=len)
    at = signed.find(raw)
    assert at > 0 and len(raw) > 1000
    flipped = bytearray(signed)
    flipped[at + len(raw) // 2] ^= 0x10
    return bytes(flipped)


def _activation_changed(data: bytes) -> bytes:
    """The model with its weights digest embedded, then one operator's fused activation changed."""
    from ich_edge.runtime.description import embed_description

    def edit(model) -> None:
        options = next(op.builtinOptions for sg in model.subgraphs for op in sg.operators
                       if hasattr(op.builtinOptions, "fusedActivationFunction"))
        options.fusedActivationFunction = 1 if options.fusedActivationFunction == 0 else 0  # NONE <-> RELU

    return _repacked(embed_description(data, read_description(data)), edit)


def _output_rewired(data: bytes) -> bytes:
    """The model with its weights digest embedded, then ``classify``'s output pointed at the tensor
    before it (the logits in the shipped file: "probabilities" of -8..-1 and a NEGATIVE otherwise)."""
    from ich_edge.runtime.description import embed_description

    def edit(model) -> None:
        sig = next(s for s in model.signatureDefs if s.signatureKey in ("classify", b"classify"))
        entry = sig.outputs[0]
        entry.tensorIndex -= 1
        model.subgraphs[sig.subgraphIndex].outputs = [entry.tensorIndex]

    return _repacked(embed_description(data, read_description(data)), edit)


BAD_FILES = {
    "empty": (lambda data: b"", "is empty"),
    "zeroed": (lambda data: bytes(len(data)), "not a TFLite flatbuffer"),
    "truncated": (lambda data: data[: len(data) // 2], "truncated or damaged"),
    "foreign": (  # a valid TFLite model, but no signatures and no description: not ours
        lambda data: _repacked(data, lambda m: (setattr(m, "signatureDefs", None), setattr(m, "metadata", None))),
        r"not an ich-edge model: it lacks the signature\(s\) classify, encode \(has: none\)",
    ),
    "wrong-signature": (
        lambda data: _repacked(data, lambda m: _rename_signature(m, "classify", "serving_default")),
        r"lacks the signature\(s\) classify \(has: encode, serving_default\)",
    ),
    "no-description": (
        lambda data: _repacked(data, lambda m: setattr(m, "metadata", None)),
        "not an ich-edge model \\(no ich_edge_description\\)",
    ),
    "altered-weight": (_weight_byte_flipped, "its weights differ from those recorded when it was converted"),
    "altered-activation": (_activation_changed, "its weights differ from those recorded when it was converted"),
    "rewired-output": (_output_rewired, "its weights differ from those recorded when it was converted"),
}


@pytest.fixture(params=sorted(BAD_FILES))
def bad_model(request, real_bytes, tmp_path) -> tuple[Path, str]:
    make, message = BAD_FILES[request.param]
    path = tmp_path / f"{request.param}.tflite"
    path.write_bytes(make(real_bytes))
    return path, message


def test_the_real_model_passes_the_check(real_bytes):
    description = check_model_file(REAL_MODEL)
    assert description == read_description(real_bytes) and description["labels"]


def test_bad_model_files_are_a_model_error_in_the_shared_loader(bad_model):
    """TFLiteStudyModel is how predict, bench, parity and assets open a model."""
    path, message = bad_model
    with pytest.raises(ModelError, match=message):
        TFLiteStudyModel(path, num_threads=1)


@pytest.mark.parametrize("verb", ["predict", "bench"])
def test_bad_model_files_are_one_line_and_exit_3(bad_model, verb, tmp_path, capsys):
    path, message = bad_model
    series = tmp_path / "no-series-needed"  # the model is checked before any input is read
    argv = {
        "predict": ["predict", "--model", str(path), "--dicom", str(series), "--json"],
        "bench": ["bench", "--model", str(path), "--backend", "xnnpack", "--runs", "2", "--out", str(tmp_path / "r.json")],
    }[verb]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 3
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ich-edge: error: {path}"), captured.err
    import re

    assert re.search(message, lines[0]) and "Traceback" not in captured.err
    assert captured.out == "" and not (tmp_path / "r.json").exists()


# --- fuzz ------------------------------------------------------------------------------------


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """``data`` with 1-8 bits flipped anywhere, and/or cut somewhere (at least one change).

    Positions come from ``random.Random(seed)`` with a seed hypothesis draws: uniform over
    the file (hypothesis's own integers favour small values, i.e. the header, which the
    first check refuses).
    """
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    buffer = bytearray(data)
    flips = draw(st.integers(0, 8))
    for _ in range(flips):
        buffer[rnd.randrange(len(buffer))] ^= 1 << rnd.randrange(8)
    if flips == 0 or draw(st.booleans()):
        del buffer[rnd.randrange(len(buffer)) :]
    return bytes(buffer)


FUZZ_COUNTS: Counter = Counter()


def _read_all(blob: bytes) -> str:
    outcome = "ok"
    for call in (check_model_file, read_description, op_summary):
        try:
            call(blob)
        except ModelError:
            outcome = "ModelError"  # the only error allowed out
    return outcome


@functools.cache
def _real() -> bytes:
    """The committed model without its weights digest (not a fixture: hypothesis would print 115 kB).

    With the digest, 149 of 150 random damages are refused before the interpreter sees them
    (and 1 passes: a flipped bit outside what the digest covers); without it, enough damaged files
    reach LiteRT to show that those that pass the other checks run or raise ModelError: files
    converted before the digest existed have none.
    """
    return _repacked(REAL_MODEL.read_bytes(), _drop_digest)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_bytes_give_a_result_or_model_error_in_python(data):
    blob = data.draw(damaged(_real()))
    try:
        FUZZ_COUNTS[f"python: {_read_all(blob)}"] += 1
    except Exception:
        print(f"failing example: {len(blob)} bytes, differs from the model at {_diff(blob)}")
        raise


def _diff(blob: bytes) -> str:
    real = _real()
    positions = [i for i, (a, b) in enumerate(zip(blob, real)) if a != b]
    cut = f", cut at {len(blob)}" if len(blob) < len(real) else ""
    return f"bytes {positions}{cut}"


_WORKER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from ich_edge.errors import ModelError
    from ich_edge.runtime import predict
    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    for line in sys.stdin:
        path = line.strip()
        print(json.dumps({"start": path}), flush=True)
        try:
            # The shared loader as every verb uses it; timing_only lets a stateful file (the
            # committed demo model before its stateless conversion) reach the interpreter too.
            model = TFLiteStudyModel(path, num_threads=1, timing_only=True)
            size = model.input_size_px
            images = np.random.default_rng(0).integers(0, 256, (5, size, size, 3), dtype=np.uint8)
            predict.run_model(model, images)
            outcome = "ok"
        except ModelError:
            outcome = "ModelError"
        except Exception as err:
            outcome = f"{type(err).__name__}: {err}"
        print(json.dumps({"path": path, "outcome": outcome}), flush=True)
    """
)


def _run_in_subprocesses(paths: list[Path]) -> dict[str, str]:
    """Outcome per file; a worker that dies is restarted after the file that killed it."""
    outcomes: dict[str, str] = {}
    todo = [str(p) for p in paths]
    while todo:
        done = subprocess.run(
            [sys.executable, "-c", _WORKER], input="\n".join(todo) + "\n", capture_output=True, text=True, timeout=600
        )
        started = None
        for line in done.stdout.splitlines():
            record = json.loads(line)
            if "start" in record:
                started = record["start"]
            else:
                outcomes[record["path"]] = record["outcome"]
                started = None
        if started is not None:
            outcomes[started] = f"process ended with code {done.returncode}"
        elif done.returncode != 0:
            pytest.fail(f"the fuzz worker failed: {done.stderr[-2000:]}")
        todo = [p for p in todo if p not in outcomes]
    return outcomes


def test_damaged_models_that_pass_the_check_run_or_raise_model_error(tmp_path):
    survivors: list[Path] = []

    @settings(max_examples=150, deadline=None, derandomize=True, database=None)
    @given(blob=damaged(_real()))
    def collect(blob):
        try:
            check_model_file(blob)
        except ModelError:
            FUZZ_COUNTS["check: refused"] += 1
            return
        FUZZ_COUNTS["check: passed"] += 1
        path = tmp_path / f"survivor_{len(survivors)}.tflite"
        path.write_bytes(blob)
        survivors.append(path)

    collect()
    assert len(survivors) >= 10, FUZZ_COUNTS  # enough damaged files reach the interpreter
    undamaged = tmp_path / "undamaged.tflite"
    undamaged.write_bytes(_real())
    outcomes = _run_in_subprocesses([undamaged, *survivors])
    assert outcomes.pop(str(undamaged)) == "ok"  # the worker really runs models: not a vacuous pass
    FUZZ_COUNTS.update(f"interpreter: {o if o in ('ok', 'ModelError') else 'other'}" for o in outcomes.values())
    print("\nmodel fuzz outcomes:", dict(sorted(FUZZ_COUNTS.items())))
    bad = {path: outcome for path, outcome in outcomes.items() if outcome not in ("ok", "ModelError")}
    assert not bad, bad


@pytest.mark.parametrize("kind", ["empty", "zeroed", "truncated"])
def test_every_flatbuffer_reader_gives_the_same_one_line_error(kind, real_bytes):
    """description, model_check and coverage read through ich_edge.runtime.flatbuffer: one message."""
    from ich_edge.runtime import coverage, flatbuffer

    make, message = BAD_FILES[kind]
    data = make(real_bytes)
    messages = set()
    for read in (flatbuffer.unpack, coverage.read_model, read_description, op_summary,
                 lambda d: check_model_file(d, ich_edge=False)):
        with pytest.raises(ModelError, match=message) as caught:
            read(data)
        messages.add(str(caught.value).splitlines()[0].split(";")[0])
        assert "\n" not in str(caught.value)
    assert len(messages) == 1, messages


@pytest.mark.parametrize("kind", [0, 1, 200], ids=["NONE", "Conv2DOptions", "unknown 200"])
def test_an_operator_whose_options_type_was_damaged_is_refused_before_the_interpreter(kind, tmp_path):
    """One SPLIT's options type changed (the fuzz test's survivor on the shipped file): LiteRT's parser
    reads SplitOptions without checking the type and the process died of a segmentation fault. The check
    refuses it in one line, so the interpreter never sees it (the file has no weights digest, like a
    file converted before it or by another converter)."""
    from ich_edge.runtime.flatbuffer import builtin_op_names

    names = builtin_op_names()

    def damage(model):
        _drop_digest(model)
        for subgraph in model.subgraphs:
            for operator in subgraph.operators:
                code = model.operatorCodes[operator.opcodeIndex]
                if names[max(code.builtinCode, code.deprecatedBuiltinCode)] == "SPLIT":
                    operator.builtinOptionsType = kind
                    return

    blob = _repacked(REAL_MODEL.read_bytes(), damage)
    with pytest.raises(ModelError, match="(carries|unknown options type)") as caught:
        check_model_file(blob)
    assert "\n" not in str(caught.value)
    path = tmp_path / "model.tflite"
    path.write_bytes(blob)
    assert _run_in_subprocesses([path])[str(path)] == "ModelError"  # the shared loader refuses it too
