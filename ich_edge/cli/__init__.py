"""The ``ich-edge`` command line.

Each verb lives in its own module ``ich_edge.cli.<verb>`` exposing a Click command named
``command``; modules are imported only when their verb runs, so runtime verbs (inspect,
predict, bench) never import TensorFlow. Errors derived from :class:`IchEdgeError` become
one line on stderr and a non-zero exit code; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from ich_edge import __version__
from ich_edge.errors import IchEdgeError

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
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
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
        # Without standalone mode Click returns ctx.exit()'s code instead of exiting.
        returned = cli.main(args=args, prog_name="ich-edge", standalone_mode=False)
    except IchEdgeError as err:
        if debug:
            raise
        click.echo(f"ich-edge: error: {err}", err=True)
        return err.exit_code
    except click.exceptions.Abort:
        click.echo("ich-edge: aborted", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Exit as err:
        return err.exit_code
    return returned if isinstance(returned, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def console() -> None:
    """setuptools console-script target."""
    sys.exit(main())
