"""No function or method longer than :data:`MAX_FUNCTION_LINES` lines in the code people read.

A function's length is ``end_lineno - lineno + 1`` of its ``def`` (decorators excluded,
signature, docstring and nested functions included), read from the AST, so a long click
decorator stack does not count and a long body cannot hide in a nested helper. There is no
allowlist: a function over the limit is split into well-named helpers.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 80
#: The folders whose functions are held to the limit (the package, its converters, the tools).
FOLDERS = ("ich_edge", "converters", "scripts", "benchmarks")


def function_lengths(path: Path) -> list[tuple[str, int]]:
    """``(qualified name, lines)`` of every function and method in ``path``, nested ones included.

    The qualified name follows Python's ``__qualname__``: ``Class.method``,
    ``outer.<locals>.inner``.
    """
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                found.append((name, child.end_lineno - child.lineno + 1))
                visit(child, f"{name}.<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(), filename=str(path)), "")
    return found


def long_functions(root: Path = REPO, folders=FOLDERS, max_lines: int = MAX_FUNCTION_LINES) -> list[str]:
    """``path::name (N lines)`` for each function of ``folders`` under ``root`` longer than ``max_lines``."""
    too_long = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            for name, lines in function_lengths(path):
                if lines > max_lines:
                    too_long.append(f"{path.relative_to(root).as_posix()}::{name} ({lines} lines)")
    return too_long


def test_no_function_is_longer_than_the_limit():
    too_long = long_functions()
    assert not too_long, (
        f"{len(too_long)} function(s) longer than {MAX_FUNCTION_LINES} lines (def to last line, decorators "
        "excluded): split each into well-named helpers (one step each, see ich_edge/runtime/montage.py):\n  "
        + "\n  ".join(too_long)
    )


def _body(lines: int) -> str:
    """The body of a function ``lines`` long with its ``def`` line."""
    return "".join(f"    x{i} = {i}\n" for i in range(lines - 1))


def test_the_check_can_fail(tmp_path):
    """A synthetic module: an 81-line function and method are found; 80 lines and a long decorator stack are not."""
    source = (
        "def at_the_limit():\n" + _body(MAX_FUNCTION_LINES)
        + "def over_the_limit():\n" + _body(MAX_FUNCTION_LINES + 1)
        + "".join("@decorator\n" for _ in range(100)) + "def decorated():\n" + _body(3)
        + "class Verb:\n    def method(self):\n" + "".join(f"        y{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
        + "def outer():\n    def inner():\n" + "".join(f"        z{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    )
    module = tmp_path / "pkg" / "sub" / "long.py"
    module.parent.mkdir(parents=True)
    module.write_text(source)
    assert long_functions(tmp_path, folders=("pkg",)) == [
        f"pkg/sub/long.py::over_the_limit ({MAX_FUNCTION_LINES + 1} lines)",
        f"pkg/sub/long.py::Verb.method ({MAX_FUNCTION_LINES + 1} lines)",
        f"pkg/sub/long.py::outer ({MAX_FUNCTION_LINES + 2} lines)",
        f"pkg/sub/long.py::outer.<locals>.inner ({MAX_FUNCTION_LINES + 1} lines)",
    ]


def test_the_guard_reads_every_folder_it_names():
    """A renamed folder must not switch the guard off silently."""
    missing = [folder for folder in FOLDERS if not any((REPO / folder).rglob("*.py"))]
    assert not missing, f"no Python files under {missing}: update FOLDERS in {Path(__file__).name}"
