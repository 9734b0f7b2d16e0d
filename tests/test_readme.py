"""The README's measured blocks are what ``benchmarks/readme_tables.py`` renders from the committed result files."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import readme_tables  # noqa: E402  benchmarks/readme_tables.py


def test_readme_blocks_are_rendered_from_the_newest_results():
    text = (ROOT / "README.md").read_text()
    assert readme_tables.render(text) == text, "README.md is stale: run python benchmarks/readme_tables.py"


def test_replace_block_touches_only_its_block():
    text = "a\n<!-- x:start -->\nold\n<!-- x:end -->\nb\n<!-- y:start -->\nkeep\n<!-- y:end -->\n"
    assert readme_tables.replace_block(text, "x", "new") == text.replace("old", "new")
    assert readme_tables.replace_block(text, "missing", "new") == text
