"""One read of each run folder's config.json along one command (issue #25): ``convert`` and
``parity`` open each folder once (:class:`ich_edge.training.run_dir.RunDir`) and pass it down."""

from __future__ import annotations

import builtins
import collections
import os
from pathlib import Path

from ich_edge.cli import main
from ich_edge.precisions import FP32

CONFIG = "config.json"


def count_config_reads(monkeypatch) -> collections.Counter:
    """Counts opens of any ``config.json`` (through ``Path.open``/``read_text`` or ``open``), by folder."""
    reads: collections.Counter = collections.Counter()
    path_open, plain_open = Path.open, builtins.open

    def counting_path_open(self, *args, **kwargs):
        if self.name == CONFIG:
            reads[self.resolve().parent] += 1
        return path_open(self, *args, **kwargs)

    def counting_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file).name == CONFIG:
            reads[Path(file).resolve().parent] += 1
        return plain_open(file, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_path_open)
    monkeypatch.setattr(builtins, "open", counting_open)
    return reads


def test_convert_reads_the_run_config_once(tiny_run, tmp_path, monkeypatch):
    run_dir = tiny_run[0]
    reads = count_config_reads(monkeypatch)
    assert main(["convert", "--model", str(run_dir), "--precision", FP32, "--out", str(tmp_path / "out")]) == 0
    assert dict(reads) == {run_dir.resolve(): 1}


def test_parity_reads_each_run_config_once(tiny_run, converted, monkeypatch):
    run_dir, cache_dir, _ = tiny_run
    reads = count_config_reads(monkeypatch)
    code = main(["parity", "--reference", str(run_dir), "--converted-from", str(converted["bad_run"]),
                 "--model", str(converted["fp32"]), "--model", str(converted["bad_fp32"]),
                 "--data", str(cache_dir), "--bootstrap", "0"])
    assert code in (1, 4)  # the bad file fails deployment; without intervals the rest is INSUFFICIENT
    assert dict(reads) == {run_dir.resolve(): 1, converted["bad_run"].resolve(): 1}
