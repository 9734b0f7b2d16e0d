"""Result files name no folder of the machine they ran on (one owner: bench.report.write_results)."""

from __future__ import annotations

import json
from pathlib import Path

from ich_edge.runtime.bench.report import relative_paths, write_results

REPO = Path(__file__).resolve().parents[2]


def test_write_results_makes_absolute_paths_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = {"created_utc": "2026-12-06T00:00:00Z", "machine": {"host": "vm"},
              "work": str(tmp_path / "scratch" / "m.tflite"), "rows": [{"path": "/elsewhere/run/model.tflite"}], "n": 3}
    (path,) = write_results(result, "demo", tmp_path / "results")
    written = json.loads(path.read_text())
    assert written["work"] == "scratch/m.tflite" and written["rows"][0]["path"] == "<outside>/elsewhere/run/model.tflite"
    assert written["n"] == 3 and result["work"].startswith("/")  # the caller's own dict is untouched


def test_no_committed_result_file_holds_an_absolute_path():
    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    offenders = {p.name: s for p in sorted((REPO / "benchmarks" / "results").glob("*.json"))
                 for s in strings(json.loads(p.read_text())) if s.startswith("/")}
    assert not offenders, offenders
    assert relative_paths("/a/b", "/a") == "b"
