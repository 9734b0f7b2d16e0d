"""The conventions every ``ich-edge`` verb follows (docs/cli.md), in one place.

* ``--json`` is a flag: the verb prints its JSON result on stdout, and stdout carries only it.
* A verb that writes a result file takes ``--out PATH``; every verb that writes refuses an
  existing output unless ``--force`` (:func:`ich_edge.fileio.refuse_existing`, exit 3).
* ``--model`` is the model the verb acts on (a .tflite, or a RUN_DIR/QAT_DIR), repeatable
  where a verb takes several; ``--dicom PATH`` is the DICOM input.
* ``--data CACHE`` is a prepared cache the verb reads; ``--test CACHE`` one of held-out
  studies it evaluates on (parity and bench also accept ``--data`` for it).
* List-valued options take comma-separated values and repetition alike (:func:`list_option`).
* An option name means one thing in every verb (the table in tests/test_cli_option_names.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import click

class CommaList(click.ParamType):
    """One occurrence of a list option: ``1,2,4`` -> ``(1, 2, 4)``, items converted by ``item``.

    Used only through :func:`list_option`, which also accepts repetition and flattens.
    """

    name = "a,b,..."

    def __init__(self, item: click.ParamType = click.STRING, choices: Iterable[str] | None = None) -> None:
        self.item = click.types.convert_type(item)
        self.choices = tuple(choices) if choices is not None else None

    def convert(self, value, param, ctx) -> tuple:
        pieces = value if isinstance(value, (list, tuple)) else str(value).split(",")
        items = []
        for piece in pieces:
            piece = piece.strip() if isinstance(piece, str) else piece
            if piece == "":
                continue
            if self.choices is not None and piece not in self.choices:
                self.fail(f"{piece!r} is not one of {', '.join(self.choices)}", param, ctx)
            items.append(self.item.convert(piece, param, ctx))
        if not items:
            self.fail("give at least one value", param, ctx)
        return tuple(items)


def _flatten(ctx: click.Context, param: click.Parameter, value) -> tuple:
    return tuple(item for occurrence in value or () for item in occurrence)


def list_option(*decls: str, item: click.ParamType = click.STRING, choices: Iterable[str] | None = None, **kwargs):
    """A list-valued option: ``--x 1,2 --x 4`` and ``--x 1 --x 2 --x 4`` both give ``(1, 2, 4)``.

    ``default`` is a tuple of values (or of comma-separated strings).
    """
    if kwargs.get("default") is not None and not isinstance(kwargs["default"], (list, tuple)):
        kwargs["default"] = (kwargs["default"],)
    return click.option(*decls, type=CommaList(item, choices), multiple=True, callback=_flatten, **kwargs)


def result_options(out_help: str, json_help: str, force_help: str) -> Callable:
    """``--out`` (repeatable; a PATH ending in .json is that file), ``--json`` (stdout) and
    ``--force``: the output options of a verb that writes a JSON result (parity, bench)."""

    def decorate(command: Callable) -> Callable:
        command = click.option("--force", is_flag=True, help=force_help)(command)
        command = click.option("--json", "as_json", is_flag=True, help=json_help)(command)
        return click.option("--out", "outs", multiple=True, type=click.Path(path_type=Path), help=out_help)(command)

    return decorate


def is_list_option(param: click.Parameter) -> bool:
    """True for an option made by :func:`list_option` (the conventions test checks this)."""
    return isinstance(param, click.Option) and isinstance(param.type, CommaList) and param.multiple
