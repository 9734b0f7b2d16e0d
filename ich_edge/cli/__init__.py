"""The ``ich-edge`` command line.

Each verb lives in its own module ``ich_edge.cli.<verb>`` exposing a Click command named
``command``; modules are imported only when their verb runs, so runtime verbs (inspect,
predict, bench) never import TensorFlow. Errors derived from :class:`IchEdgeError` become
one line on stderr and the exit code of their class; ``--debug`` shows the traceback instead.
Without ``--debug`` the native libraries' start-up lines (TensorFlow's absl/CUDA lines,
LiteRT's INFO lines) are held back (:mod:`ich_edge.quiet`). The option conventions every
verb follows (``--json``, ``--out``, ``--force``, ``--model``, ``--dicom``, list options,
deprecated spellings) live in :mod:`ich_edge.cli.conventions` and docs/cli.md.
Text that can quote DICOM header values (pydicom's warnings, errors met while reading
DICOM) is masked by :mod:`ich_edge.dicom.privacy` for every verb.

Exit codes, the same for every verb:

====  ======================================================================================
code  meaning
====  ======================================================================================
0     success / PASS
1     a gate failed: parity FAIL, assets refusing a model without a passing parity report,
      ``make demo`` stopped by a gate
2     usage or configuration error: a bad option or value, an unknown verb
3     could not run: unusable input or environment (DICOM, cache, model file, labels, a
      missing dependency, an output that exists, a bench row that failed to measure)
4     insufficient evidence: e.g. parity INSUFFICIENT, the test set is too small to judge
70    an internal error (a bug in ich-edge): the traceback is printed, please report it
130   interrupted (Ctrl-C)
====  ======================================================================================
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from ich_edge import __version__
from ich_edge.dicom.privacy import error_line, masked_messages
from ich_edge.errors import IchEdgeError
from ich_edge.quiet import debug_mode, silence_teardown

#: Exit codes of the contract above (ich_edge.errors gives each error class its own).
EXIT_OK, EXIT_GATE_FAILED, EXIT_USAGE, EXIT_CANNOT_RUN, EXIT_INSUFFICIENT = 0, 1, 2, 3, 4
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
        if debug:  # the traceback, but the class's exit code (never 1, which says "a gate failed")
            import traceback

            traceback.print_exc()
            return err.exit_code
        click.echo(f"ich-edge: error: {error_line(err)}", err=True)
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
    except Exception:
        if debug:
            raise
        # A bug, not a user error: keep the traceback for the report, but never exit 1,
        # which says "a gate failed".
        import traceback

        traceback.print_exc()
        click.echo("ich-edge: internal error (a bug in ich-edge); please report the traceback above", err=True)
        return EXIT_INTERNAL_ERROR
    return returned if isinstance(returned, int) else EXIT_OK


def console() -> None:
    """setuptools console-script target (and ``python -m ich_edge``)."""
    code = main()
    if "--debug" not in sys.argv[1:]:
        silence_teardown()  # LiteRT's destructors print INFO lines while the process exits
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    console()
