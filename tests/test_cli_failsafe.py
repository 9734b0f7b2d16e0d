"""The CLI's one mapping of failures: full or read-only outputs, --debug, one line, one code per cause."""

from __future__ import annotations

import errno
import os
import sys

import click
import pytest

from ich_edge import errors
from ich_edge.cli import COMMANDS, main

command = None  # replaced by each test (COMMANDS points here)


def _install(monkeypatch, raising) -> None:
    monkeypatch.setattr(sys.modules[__name__], "command", click.command()(raising))
    monkeypatch.setitem(COMMANDS, "raise-it", (__name__, "test only"))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES])
def test_a_full_or_read_only_output_is_one_line_and_exit_3(monkeypatch, capsys, code):
    def raising():
        raise OSError(code, os.strerror(code), "/data/out/model.tflite")

    _install(monkeypatch, raising)
    assert main(["raise-it"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ich-edge: error: cannot ") and "/data/out/model.tflite" in err, err
    assert "Traceback" not in err and os.strerror(code) in err


def test_a_full_disk_wrapped_by_a_library_is_found_in_the_chain(monkeypatch, capsys):
    def raising():
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as err:
            raise RuntimeError("could not save the figure") from err

    _install(monkeypatch, raising)
    assert main(["raise-it"]) == 3
    assert "No space left on device" in capsys.readouterr().err


def test_debug_keeps_the_exit_code_and_shows_the_traceback(monkeypatch, capsys):
    def raising():
        raise errors.InsufficientEvidenceError("too few studies")

    _install(monkeypatch, raising)
    assert main(["--debug", "raise-it"]) == 4
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1] == "ich-edge: error: too few studies"

    def full():
        raise OSError(errno.ENOSPC, "No space left on device")

    _install(monkeypatch, full)
    assert main(["--debug", "raise-it"]) == 3


def test_an_error_line_never_spans_lines(monkeypatch, capsys):
    def raising():
        raise errors.ModelError("model\nwith a newline.tflite: LiteRT said:\nERROR: op not supported\n")

    _install(monkeypatch, raising)
    assert main(["raise-it"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "op not supported" in err, err


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("verb", ["synth", "synth --preview"])
def test_real_verbs_on_a_full_disk_are_one_line_and_exit_3(verb, tmp_path, monkeypatch, capsys):
    """Every write goes through ich_edge.fileio's rename; a full disk there is exit 3, not a traceback (70)."""
    import ich_edge.fileio as fileio

    args = ["synth", "--out", str(tmp_path / "synth"), "--studies", "1", "--matrix-px", "32", "--slices", "4-4", "--workers", "1"]
    if verb == "synth --preview":
        pytest.importorskip("matplotlib", reason="--preview draws with matplotlib (the train extra installs it)")
        assert main(args) == 0
        args = ["synth", "--out", str(tmp_path / "synth"), "--preview", str(tmp_path / "preview.png")]
    capsys.readouterr()
    monkeypatch.setattr(fileio.os, "replace", _full_disk)
    assert main(args) == 3
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("ich-edge")]
    assert lines == [lines[-1]] and "No space left on device" in lines[-1] and "Traceback" not in err, err
