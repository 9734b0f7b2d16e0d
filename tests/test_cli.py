import sys

import click

from ich_edge.cli import COMMANDS, main


def test_help_lists_verbs(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Commands" in out


def test_unknown_command_fails(capsys):
    assert main(["no-such-verb"]) != 0
    assert "No such command" in capsys.readouterr().err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert "ich-edge" in capsys.readouterr().out


@click.command()
@click.pass_context
def command(ctx):
    """A verb that ends through ctx.exit(3), as parity does on failure."""
    ctx.exit(3)


def test_exit_code_of_ctx_exit_is_kept(monkeypatch):
    monkeypatch.setitem(COMMANDS, "exit-three", (__name__, "test only"))
    assert main(["exit-three"]) == 3


# --- the exit-code contract (ich_edge.errors, ich_edge.cli) --------------------------------

import pytest  # noqa: E402

import re  # noqa: E402
from pathlib import Path  # noqa: E402

import ich_edge.cli as cli_module  # noqa: E402
from ich_edge import errors  # noqa: E402
from ich_edge.cli import (  # noqa: E402
    EXIT_CANNOT_RUN, EXIT_GATE_FAILED, EXIT_INSUFFICIENT_EVIDENCE, EXIT_INTERNAL_ERROR, EXIT_USAGE,
)

CLI_DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"

ERROR_CODES = {
    errors.GateFailedError: EXIT_GATE_FAILED,
    errors.ConfigError: EXIT_USAGE,
    errors.DicomError: EXIT_CANNOT_RUN,
    errors.NotDicomError: EXIT_CANNOT_RUN,
    errors.SeriesError: EXIT_CANNOT_RUN,
    errors.NoSeriesError: EXIT_CANNOT_RUN,
    errors.CacheError: EXIT_CANNOT_RUN,
    errors.LabelsError: EXIT_CANNOT_RUN,
    errors.ModelError: EXIT_CANNOT_RUN,
    errors.MissingDependencyError: EXIT_CANNOT_RUN,
    errors.OutputExistsError: EXIT_CANNOT_RUN,
    errors.MeasurementError: EXIT_CANNOT_RUN,
    errors.InsufficientEvidenceError: EXIT_INSUFFICIENT_EVIDENCE,
}


def test_the_exit_code_table_of_docs_cli_md_is_the_exit_constants():
    """docs/cli.md holds the one table of exit codes: one row per EXIT_* constant, with its number."""
    text = CLI_DOC.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| `(EXIT_\w+)` \|", text, flags=re.MULTILINE)
    documented = {name: int(code) for code, name in rows}
    constants = {name: value for name, value in vars(cli_module).items() if name.startswith("EXIT_")}
    assert len(rows) == len(documented), f"a constant is listed twice in {CLI_DOC.name}: {rows}"
    assert documented == constants, f"{CLI_DOC.name} 'Exit codes' table != the EXIT_* constants of ich_edge.cli"


@pytest.mark.parametrize(("cls", "code"), ERROR_CODES.items(), ids=[c.__name__ for c in ERROR_CODES])
def test_each_error_class_ends_with_its_contract_code(monkeypatch, capsys, cls, code):
    @click.command()
    def raising():
        raise cls("what to do about it")

    monkeypatch.setattr(sys.modules[__name__], "command", raising)
    monkeypatch.setitem(COMMANDS, "raise-it", (__name__, "test only"))
    assert main(["raise-it"]) == code
    err = capsys.readouterr().err
    assert err == "ich-edge: error: what to do about it\n"  # one line, no traceback


def test_usage_errors_exit_2(capsys):
    assert main(["no-such-verb"]) == 2
    assert main(["inspect"]) == 2  # missing argument
    assert "Missing option '--dicom'" in capsys.readouterr().err
    assert main(["predict", "--model", "m.tflite", "--dicom", "x", "--threads", "two"]) == 2


def test_a_bug_is_an_internal_error_not_a_gate_failure(monkeypatch, capsys):
    @click.command()
    def buggy():
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(sys.modules[__name__], "command", buggy)
    monkeypatch.setitem(COMMANDS, "buggy", (__name__, "test only"))
    assert main(["buggy"]) == EXIT_INTERNAL_ERROR
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error" in err
    assert main(["--debug", "buggy"]) == EXIT_INTERNAL_ERROR  # --debug keeps the exit code
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_dicom_errors_are_masked_config_errors_are_not(monkeypatch, capsys):
    @click.command()
    @click.argument("kind")
    def raising(kind):
        if kind == "dicom":
            raise errors.NotDicomError("ID_1.dcm: not a readable DICOM file (ValueError: Invalid value 'Doe^Jane')")
        raise errors.ConfigError("unknown backend 'xnnpak'")

    monkeypatch.setattr(sys.modules[__name__], "command", raising)
    monkeypatch.setitem(COMMANDS, "raise-it", (__name__, "test only"))
    assert main(["raise-it", "dicom"]) == 3
    err = capsys.readouterr().err
    assert "Doe" not in err and "Invalid value '...'" in err
    assert main(["raise-it", "config"]) == 2
    assert "'xnnpak'" in capsys.readouterr().err
