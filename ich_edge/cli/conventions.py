"""The conventions every ``ich-edge`` verb follows (docs/cli.md), in one place.

* ``--json`` is a flag: the verb prints its JSON result on stdout, and stdout carries only it.
* A verb that writes a result file takes ``--out PATH``; every verb that writes refuses an
  existing output unless ``--force`` (:func:`ich_edge.fileio.refuse_existing`, exit 3).
* ``--model`` is the model the verb acts on (a .tflite, or a RUN_DIR/QAT_DIR), repeatable
  where a verb takes several; ``--dicom PATH`` is the DICOM input.
* List-valued options take comma-separated values and repetition alike (:func:`list_option`).
* Old spellings keep working for one release: :class:`Command` rewrites them before Click
  parses the line and prints one ``deprecated:`` line on stderr per old spelling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import click

#: The one line each deprecated spelling prints (on stderr).
DEPRECATION = "ich-edge: deprecated: {old}; use {new} (the old spelling goes in the next release)"


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


def warn_deprecated(old: str, new: str) -> None:
    """Print the one deprecation line of an old spelling on stderr."""
    click.echo(DEPRECATION.format(old=old, new=new), err=True)


class Command(click.Command):
    """A verb whose old spellings are rewritten to the current ones before Click parses.

    Parameters (besides :class:`click.Command`'s)
    ----------
    renamed : ``{"--old": "--new"}``; ``"--new"`` None drops the old option (a no-op now).
    old_json_out : the verb's ``--json`` once took a file path: ``--json PATH`` (a value that is
        not an option, and for which the predicate, if given, is true) becomes ``--out PATH``.
    positional : the option that the verb's old positional arguments become (``--dicom``,
        ``--model``).
    """

    def __init__(self, *args, renamed: dict[str, str | None] | None = None,
                 old_json_out: bool | Callable[[str], bool] = False, positional: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.renamed = dict(renamed or {})
        self.old_json_out = old_json_out
        self.positional = positional

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self.rewrite(list(args)))

    def _takes_value(self, token: str) -> bool:
        for param in self.params:
            if isinstance(param, click.Option) and token in (*param.opts, *param.secondary_opts):
                return not (param.is_flag or param.count)
        return False

    def _old_json_value(self, value: str) -> bool:
        if value.startswith("-"):
            return False
        return self.old_json_out(value) if callable(self.old_json_out) else bool(self.old_json_out)

    def rewrite(self, args: list[str]) -> list[str]:
        """``args`` with every deprecated spelling replaced; one stderr line per old spelling."""
        out: list[str] = []
        warned: set[str] = set()
        positionals: list[str] = []

        def warn(old: str, new: str) -> None:
            if old not in warned:
                warned.add(old)
                warn_deprecated(f"`{self.name} {old}`", new)

        i = 0
        while i < len(args):
            token = args[i]
            if token == "--":
                if self.positional is None:
                    out.append(token)
                positionals.extend(args[i + 1:])
                break
            name, eq, value = token.partition("=")
            if name == "--json" and self.old_json_out:
                old_value = value if eq else (args[i + 1] if i + 1 < len(args) else "")
                if old_value and self._old_json_value(old_value):
                    if not old_value.endswith(".json"):
                        # --out PATH without .json is a folder: the old file meaning cannot carry over
                        raise click.UsageError(f"the deprecated `--json {old_value}` wrote that file; use "
                                               f"--out {old_value}.json (a PATH without .json is a folder for --out)")
                    warn("--json PATH", "--out PATH (--json now prints the JSON on stdout)")
                    out += ["--out", old_value]
                    i += 1 if eq else 2
                    continue
            if name in self.renamed:
                new = self.renamed[name]
                if new is None:
                    warn(name, "nothing (it is the default now)")
                    i += 1
                    continue
                warn(name, new)
                token = f"{new}={value}" if eq else new
                name = new
            if token.startswith("-") and token != "-":
                out.append(token)
                if not eq and self._takes_value(name) and i + 1 < len(args):
                    out.append(args[i + 1])
                    i += 1
            elif self.positional is not None:
                positionals.append(token)
            else:
                out.append(token)
            i += 1
        if positionals and self.positional is not None:
            warn("PATH (positional)", f"{self.positional} PATH")
            for value in positionals:
                out += [self.positional, value]
        else:
            out += positionals
        return out
