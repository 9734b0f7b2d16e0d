"""The training loop, QAT and parity read as named steps: no function over 80 lines there (issue #17)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 80


@pytest.mark.parametrize("module", ["ich_edge/training/train.py", "ich_edge/training/qat.py",
                                    "ich_edge/training/parity/run.py", "ich_edge/training/parity/compare.py",
                                    "ich_edge/training/report.py"])
def test_no_function_over_80_lines(module):
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert not long, f"{module}: split into named steps: {', '.join(long)}"
