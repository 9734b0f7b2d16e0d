"""The ``ich-edge`` command line.

Each verb lives in its own module ``ich_edge.cli.<verb>`` exposing a Click command named
``command``; modules are imported only when their verb runs, so runtime verbs (inspect,
predict, bench) never import TensorFlow. Errors derived from :class:`IchEdgeError` become
one line on stderr and the exit code of their class; ``--debug`` shows the traceback too,
and keeps the exit code. A full disk or a read-only output (``ENOSPC``, ``EROFS``,
``EACCES``...) is one line and exit 3 in every verb, whichever library hit it.
Without ``--debug`` the native libraries' start-up lines (TensorFlow's absl/CUDA lines,
LiteRT's INFO lines) are held back (:mod:`ich_edge.quiet`). The option conventions every
verb follows (``--json``, ``--out``, ``--force``, ``--model``, ``--dicom``, list options, one
meaning per option name) live in :mod:`ich_edge.cli.conventions` and docs/cli.md.
Text that can quote DICOM header values (pydicom's warnings, errors met while reading
DICOM) is masked by :mod:`ich_edge.dicom.privacy` for every verb.

Exit codes, the same for every verb: the ``EXIT_*`` constants below, tabled with their
meanings in docs/cli.md ("Exit codes"; a test keeps the two equal).
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import sys

import click

from ich_edge import __version__
from ich_edge.dicom.privacy import error_line, masked_messages
from ich_edge.errors import ConfigError, GateFailedError, IchEdgeError, InsufficientEvidenceError
from ich_edge.quiet import debug_mode, silence_teardown

#: The exit codes of every verb (their meanings: the table in docs/cli.md). Those of ich-edge's
#: errors are the error classes' own: an error ends with its class's ``exit_code``.
EXIT_OK = 0
EXIT_GATE_FAILED = GateFailedError.exit_code
EXIT_USAGE = ConfigError.exit_code
EXIT_CANNOT_RUN = IchEdgeError.exit_code
EXIT_INSUFFICIENT_EVIDENCE = InsufficientEvidenceError.exit_code
EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED = 70, 130

#: verb -> (module, one-line help). Order is the pipeline order shown by --help.
COMMANDS = {
    "synth": ("ich_edge.cli.synth", "Write synthetic head-CT phantom studies in the RSNA layout."),
    "inspect": ("ich_edge.cli.inspect", "Read DICOM series and report their geometry and problems."),
    "prepare": ("ich_edge.cli.prepare", "Decode DICOM series once into a training cache."),
    "train": ("ich_edge.cli.train", "Train the CNN-LSTM on a prepared cache."),
    "import": ("ich_edge.cli.import_model", "Import a Keras CNN-LSTM trained elsewhere (.h5, .keras, SavedModel)."),
    "qat": ("ich_edge.cli.qat", "Quantization-aware fine-tuning of a trained model."),
    "convert": ("ich_edge.cli.convert", "Convert a trained model to TFLite in one or more precisions."),
    "parity": ("ich_edge.cli.parity", "Check that TFLite models agree with the Keras reference."),
    "bench": ("ich_edge.cli.bench", "Benchmark TFLite models on CPU/GPU backends (no TensorFlow)."),
    "predict": ("ich_edge.cli.predict", "Run a TFLite model on DICOM series (no TensorFlow)."),
    "assets": ("ich_edge.cli.assets", "Write the Android/iOS demo app assets for a model."),
}


#: errno of an output that cannot be written: a full disk or quota, a read-only or forbidden path.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


def one_line(text: str) -> str:
    """``text`` on one line: an error line never spans lines (LiteRT messages, file names with newlines)."""
    return " | ".join(part.strip() for part in str(text).splitlines() if part.strip()) or str(text).strip()


def environment_error(err: BaseException) -> str | None:
    """The one line for a full disk or a read-only/forbidden path anywhere in ``err``'s chain, else None.

    These are the environment, not a bug: every verb ends with this line and exit 3 instead
    of a traceback (exit 70), whatever library raised them.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _NO_SPACE | _READ_ONLY:
            where = f" {err.filename}" if err.filename else ""
            remedy = ("free some space or write to another disk (--out)" if err.errno in _NO_SPACE
                      else "choose a folder you may write to (--out), or fix its permissions")
            verb = "write" if err.errno in _NO_SPACE else "write to or read"
            return f"cannot {verb}{where}: {err.strerror or errno.errorcode.get(err.errno, err.errno)}; {remedy}"
        err = err.__cause__ or err.__context__
    return None


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _) in COMMANDS.items() if importlib.util.find_spec(module)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, _ = COMMANDS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:
                return None
            raise
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if not rows:
            return
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True,
              help="Show full tracebacks on errors, and the TensorFlow/LiteRT start-up lines that are otherwise held back.")
@click.version_option(__version__, prog_name="ich-edge")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """ich-edge: hemorrhage detection on head CT, from DICOM to the edge."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the CLI, turning ich-edge errors into one line and an exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    try:
        # debug_mode before any verb imports TensorFlow or LiteRT (ich_edge.quiet)
        with debug_mode(debug), masked_messages():
            # Without standalone mode Click returns ctx.exit()'s code instead of exiting.
            returned = cli.main(args=args, prog_name="ich-edge", standalone_mode=False)
    except IchEdgeError as err:
        _traceback_if(debug)
        click.echo(f"ich-edge: error: {one_line(error_line(err))}", err=True)
        return err.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("ich-edge: aborted", err=True)
        return EXIT_INTERRUPTED
    except click.UsageError as err:
        err.show()
        return EXIT_USAGE
    except click.FileError as err:
        err.show()
        return EXIT_CANNOT_RUN
    except click.ClickException as err:
        err.show()
        return EXIT_USAGE
    except click.exceptions.Exit as err:
        return err.exit_code
    except Exception as err:
        line = environment_error(err)
        if line is not None:
            _traceback_if(debug)
            click.echo(f"ich-edge: error: {one_line(line)}", err=True)
            return EXIT_CANNOT_RUN
        # A bug, not a user error: keep the traceback for the report, but never exit 1,
        # which says "a gate failed" (with --debug too: it keeps the exit code).
        import traceback

        traceback.print_exc()
        click.echo("ich-edge: internal error (a bug in ich-edge); please report the traceback above", err=True)
        return EXIT_INTERNAL_ERROR
    return returned if isinstance(returned, int) else EXIT_OK


def _traceback_if(debug: bool) -> None:
    """With ``--debug``, the traceback of the error being handled (the exit code stays the class's)."""
    if debug:
        import traceback

        traceback.print_exc()


def console() -> None:
    """setuptools console-script target (and ``python -m ich_edge``)."""
    code = main()
    if "--debug" not in sys.argv[1:]:
        silence_teardown()  # LiteRT's destructors print INFO lines while the process exits
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    console()
