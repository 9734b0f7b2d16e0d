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


def test_ship_lines_say_what_each_seed_shipped_and_which_layers_it_kept_float():
    ship = {"integer_count": 1, "seeds": 2, "pass_count": 0, "rows": [
        {"seed": 0, "shipped": "int8-mixed", "latency_over_fp16": 0.98, "size_over_fp16": 0.754,
         "layer_reports": {"cnn_lstm_int8-mixed.tflite": {"kept_float": ["encode/block4_expand_conv"]}}},
        {"seed": 1, "shipped": "fp16", "latency_over_fp16": 1.0, "size_over_fp16": 1.0, "layer_reports": {}}]}
    (blank, line) = readme_tables.ship_lines(ship, {"cpu_model": "AMD EPYC", "cpu_features": ["avx2"]})
    assert blank == "" and "seed 0 int8-mixed (0.98x fp16 latency, 0.75x size, block4_expand_conv float); seed 1 fp16." in line
    assert "An integer file on 1 of 2 seeds" in line and "AMD EPYC, without VNNI) on 0." in line
    assert readme_tables.ship_lines(None, {}) == []
