"""A precision is named in one place: ``ich_edge/precisions.py``; code elsewhere uses its constants."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The precision names that mean nothing else (``fp32`` and ``int8`` are also dtype names).
UNAMBIGUOUS = {"fp16", "int8-mixed", "qat-int8"}


def literals(path: Path, names: set[str]) -> list[int]:
    """Lines of ``path`` where a string constant is exactly one of ``names`` (docstrings and f-string parts aside)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in names and id(node) not in docstrings]


def test_no_precision_name_literal_outside_the_table():
    found = {}
    for folder in ("ich_edge", "converters", "scripts", "benchmarks"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path == REPO / "ich_edge" / "precisions.py":
                continue
            lines = literals(path, UNAMBIGUOUS)
            if lines:
                found[str(path.relative_to(REPO))] = lines
    assert found == {}, f"use the constants of ich_edge.precisions: {found}"


def test_the_check_sees_a_literal(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""qat-int8 in a docstring is prose."""\nSHIP = "qat-int8"\nTEXT = f"{SHIP} and fp16"\n')
    assert literals(module, UNAMBIGUOUS) == [2]
