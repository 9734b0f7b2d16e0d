"""The CLI conventions of docs/cli.md, checked on every verb of the click group.

Static: each verb's parameters (``--json`` a flag, ``--force`` wherever something is
written, ``--model``/``--dicom`` semantics, list options through the one shared type, no
old spellings left as options). Behaviour: an old spelling is Click's usage error (exit 2);
an existing output is refused with exit 3 and one line that says ``--force``; the native
libraries' start-up lines stay off stdout/stderr unless ``--debug``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest

from ich_edge.cli import COMMANDS, cli, main
from ich_edge.cli.conventions import CommaList, is_list_option
from ich_edge.dicom.write import SliceGeometry, build_ct_dataset, write_dataset_atomic

VERBS = list(COMMANDS)
#: Options that write something: a verb with one of them must have --force.
OUTPUT_OPTIONS = {"--out", "--png", "--preview"}
#: Old spellings of 0.1.0's development: no verb has them (a usage error, exit 2).
OLD_SPELLINGS = {"--tflite", "--json-file", "--json-out", "--results-dir", "--input-size", "--no-resume", "--resume"}
#: Verbs that take several models (--model repeatable) and those that take one.
MANY_MODELS = {"bench", "convert", "parity"}
ONE_MODEL = {"predict", "assets", "qat", "import"}
#: List-valued options (comma-separated and/or repeated).
LIST_OPTIONS = {("bench", "--threads"), ("bench", "--backend"), ("convert", "--precision"), ("convert", "--keep-float"),
                ("parity", "--gated-labels"), ("import", "--output-labels")}
DICOM_INPUT = {"inspect", "predict", "prepare"}
#: Lines the native libraries print at start-up; none may reach the user without --debug.
NOISE = re.compile(
    r"oneDNN custom operations|cuInit|Unable to register cu(DNN|FFT|BLAS)|cudart_stub|cuda drivers|"
    r"absl::InitializeLog|TensorFlow Lite XNNPACK delegate|accelerator_registry|environment\.cc|gpu_registry"
)


def _command(verb: str) -> click.Command:
    command = cli.get_command(click.Context(cli), verb)
    assert command is not None, verb
    return command


def _options(verb: str) -> dict[str, click.Option]:
    return {opt: p for p in _command(verb).params if isinstance(p, click.Option) for opt in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help_and_follows_the_option_conventions(verb, capsys):
    assert main([verb, "--help"]) == 0
    assert "Usage: ich-edge" in capsys.readouterr().out
    command, options = _command(verb), _options(verb)
    assert not [p for p in command.params if isinstance(p, click.Argument)], f"{verb}: inputs are options, not positionals"
    if "--json" in options:
        assert options["--json"].is_flag, f"{verb}: --json prints JSON on stdout; a file goes to --out"
    if OUTPUT_OPTIONS & set(options):
        assert "--force" in options and options["--force"].is_flag, f"{verb} writes files but has no --force"
    assert not OLD_SPELLINGS & set(options), f"{verb}: old spellings are gone, not options"
    for name, option in options.items():
        listed = (verb, name) in LIST_OPTIONS
        assert is_list_option(option) == listed, f"{verb} {name}: list options use conventions.list_option"
        if "comma-separated" in (option.help or "").lower():
            assert listed, f"{verb} {name} says comma-separated but is not a list option"
        if name.endswith("-size"):
            assert name == "--batch-size", f"{verb} {name}: a size carries its unit (e.g. --input-size-px)"
    if "--threads" in options and not listed_threads(verb):
        assert options["--threads"].type == click.INT and not options["--threads"].multiple
    if verb in MANY_MODELS | ONE_MODEL:
        assert "--model" in options, f"{verb}: the model it acts on is --model"
        assert options["--model"].multiple == (verb in MANY_MODELS), verb
    if verb in DICOM_INPUT:
        assert "--dicom" in options and options["--dicom"].required, verb


def listed_threads(verb: str) -> bool:
    return (verb, "--threads") in LIST_OPTIONS


def test_list_options_take_commas_and_repetition_alike():
    command = _command("bench")
    by_commas = command.make_context("bench", ["--model", "m.tflite", "--threads", "1,2", "--backend", "xnnpack,reference"])
    repeated = command.make_context("bench", ["--model", "m.tflite", "--threads", "1", "--threads", "2",
                                              "--backend", "xnnpack", "--backend", "reference"])
    mixed = command.make_context("bench", ["--model", "m.tflite", "--threads", "1,2", "--threads", "4"])
    assert by_commas.params["threads"] == repeated.params["threads"] == (1, 2)
    assert by_commas.params["backends"] == repeated.params["backends"] == ("xnnpack", "reference")
    assert mixed.params["threads"] == (1, 2, 4)
    with pytest.raises(click.BadParameter, match="not a valid integer"):
        command.make_context("bench", ["--model", "m.tflite", "--threads", "1,two"])
    assert isinstance(_options("convert")["--precision"].type, CommaList)


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "--model", "a.tflite", "b.tflite"],  # positional models
        ["bench", "--model", "a.tflite", "--json", "r.json"],  # --json PATH
        ["bench", "--model", "a.tflite", "--results-dir", "res"],
        ["parity", "--reference", "run", "--tflite", "a.tflite", "--test", "cache"],
        ["parity", "--reference", "run", "--model", "a.tflite", "--test", "cache", "--json", "r.json"],
        ["parity", "--reference", "run", "--model", "a.tflite", "--test", "cache", "--studies", "all"],
        ["predict", "--model", "m.tflite", "series/"],  # positional PATH
        ["inspect", "series/"],
        ["prepare", "--dicom", "d", "--out", "c", "--input-size", "16"],
        ["prepare", "--dicom", "d", "--out", "c", "--labels", "labels.csv"],
        ["train", "--data", "c", "--out", "r", "--no-resume"],
        ["train", "--data", "c", "--out", "r", "--resume"],
        ["import", "--model", "m.h5", "--out", "r", "--labels", "any"],
    ],
    ids=lambda args: " ".join(args),
)
def test_an_old_spelling_is_a_usage_error(args, capsys):
    """No rewriting layer: an old spelling gets Click's one-line usage error and exit 2, nothing runs."""
    assert main(args) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "deprecated" not in captured.err and captured.out == "", captured.err


@pytest.mark.parametrize(("verb", "given"), [("parity", ["--reference", "run", "--model", "m.tflite"]),
                                             ("bench", ["--model", "m.tflite"])])
def test_the_held_out_cache_is_test_and_data_is_its_second_name(verb, given, capsys):
    """parity and bench: ``--test CACHE`` as in train; ``--data CACHE`` is the same option, without a warning."""
    for name in ("--test", "--data"):
        assert _command(verb).make_context(verb, [*given, name, "cache"]).params["data"] == Path("cache")
    assert "--test" in _options(verb)["--data"].opts
    assert capsys.readouterr() == ("", "")


def _tiny_series(folder: Path) -> Path:
    folder.mkdir()
    hu = np.full((32, 32), 40.0)
    hu[:4] = -1000.0  # air above the head: HU a head CT can hold (ich_edge.dicom.plausibility)
    for k in range(4):
        ds = build_ct_dataset(
            hu, sop_instance_uid=f"ID_00000000{k}", series_uid="1.2.826.0.1.3680043.8.498.77",
            study_uid="1.2.826.0.1.3680043.8.498.7", geometry=SliceGeometry(position_mm=(0.0, 0.0, 5.0 * k)),
            instance_number=4 - k,
        )
        write_dataset_atomic(ds, folder / f"ID_00000000{k}.dcm")
    return folder


@pytest.fixture()
def tiny(tmp_path):
    """A tiny ich-edge .tflite (no TensorFlow needed) and a 4-slice CT series."""
    from tiny_app_model import tiny_model_bytes

    model = tmp_path / "model.tflite"
    model.write_bytes(tiny_model_bytes())
    return model, _tiny_series(tmp_path / "series")


def test_inspect_and_predict_json_print_only_json(tiny, capsys):
    model, series = tiny
    assert main(["predict", "--model", str(model), "--dicom", str(series), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["num_slices"] == 4  # stdout: only the JSON
    assert main(["inspect", "--dicom", str(series), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["num_slices"] == 4


def test_bench_json_flag_prints_only_json_and_out_is_refused_without_force(tiny, tmp_path, capsys):
    model, _ = tiny
    fast = ["--backend", "xnnpack", "--threads", "1", "--runs", "2", "--warmup", "0", "--study-slices", "4"]
    old = tmp_path / "old.json"
    assert main(["bench", "--model", str(model), *fast, "--out", str(old)]) == 0
    assert json.loads(old.read_text())["rows"][0]["status"] == "ok"
    capsys.readouterr()
    assert main(["bench", "--model", str(model), *fast, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["rows"][0]["status"] == "ok"
    # An existing --out file: refused before measuring, exit 3, one line naming --force.
    assert main(["bench", "--model", str(model), *fast, "--out", str(old)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "add --force" in err and "measur" not in err
    assert main(["bench", "--model", str(model), *fast, "--out", str(old), "--force"]) == 0


def test_predict_png_is_refused_without_force(tiny, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    model, series = tiny
    png = tmp_path / "montage.png"
    args = ["predict", "--model", str(model), "--dicom", str(series), "--png", str(png)]
    assert main(args) == 0 and png.is_file()
    capsys.readouterr()
    assert main(args) == 3
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("ich-edge: error:") and "add --force" in err
    assert main([*args, "--force"]) == 0


def test_synth_and_prepare_refuse_existing_outputs_without_force(tmp_path, capsys):
    synth = tmp_path / "synth"
    args = ["synth", "--out", str(synth), "--studies", "1", "--matrix-px", "32", "--slices", "4-4", "--workers", "1"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err
    assert main([*args, "--force"]) == 0

    cache = tmp_path / "cache"
    prepare = ["prepare", "--dicom", str(synth / "dicom"), "--out", str(cache), "--workers", "1"]
    assert main([*prepare, "--input-size-px", "16"]) == 0
    capsys.readouterr()
    assert main([*prepare, "--input-size-px", "32"]) == 3  # another preprocessing: refused
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "add --force" in err
    assert main([*prepare, "--input-size-px", "32", "--force"]) == 0  # starts over
    assert json.loads((cache / "preprocess.json").read_text())["input_size_px"] == 32
    assert main([*prepare, "--input-size-px", "32", "--force", "--shard", "0/2"]) == 2  # would delete other shards' work
    other = tmp_path / "not_a_cache"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    capsys.readouterr()
    assert main(["prepare", "--dicom", str(synth / "dicom"), "--out", str(other), "--force"]) == 3
    assert (other / "keep.txt").is_file() and "which prepare did not write" in capsys.readouterr().err


def _run_cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ICH_EDGE_DEBUG")}
    return subprocess.run([sys.executable, "-m", "ich_edge", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)


def test_predict_output_holds_no_litert_lines_unless_debug(tiny, tmp_path):
    model, series = tiny
    args = ["predict", "--model", str(model), "--dicom", str(series), "--json"]
    quiet = _run_cli(args, tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout)[0]["num_slices"] == 4  # stdout is only the JSON
    assert not NOISE.search(quiet.stdout + quiet.stderr), quiet.stderr
    loud = _run_cli(["--debug", *args], tmp_path)
    assert loud.returncode == 0 and NOISE.search(loud.stderr), loud.stderr  # --debug lets them through


def test_a_tensorflow_verb_prints_no_start_up_lines_unless_debug(tmp_path):
    if importlib.util.find_spec("tensorflow") is None:  # find_spec: never import TF into this process
        pytest.skip("needs TensorFlow (the train extra)")
    # train imports TensorFlow before it opens the cache: the error line must be the only line.
    args = ["train", "--data", str(tmp_path / "no_cache"), "--out", str(tmp_path / "run")]
    quiet = _run_cli(args, tmp_path)
    assert quiet.returncode == 3 and quiet.stdout == ""
    assert quiet.stderr.count("\n") == 1 and quiet.stderr.startswith("ich-edge: error:"), quiet.stderr
    loud = _run_cli(["--debug", *args], tmp_path)
    assert NOISE.search(loud.stderr), loud.stderr[-2000:]


def test_silenced_native_output_is_dropped_and_replayed_when_the_call_fails(capfd, monkeypatch):
    from ich_edge.quiet import DEBUG_ENV, native_output_silenced

    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with native_output_silenced():
        os.write(2, b"INFO: noise\n")
    assert "noise" not in capfd.readouterr().err
    with pytest.raises(RuntimeError, match="failed"):
        with native_output_silenced():
            os.write(2, b"the reason it failed\n")
            raise RuntimeError("failed")
    assert "the reason it failed" in capfd.readouterr().err
    monkeypatch.setenv(DEBUG_ENV, "1")
    with native_output_silenced():
        os.write(2, b"INFO: shown with --debug\n")
    assert "shown with --debug" in capfd.readouterr().err
