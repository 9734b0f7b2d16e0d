"""The benchmark result envelope has one owner (ich_edge.runtime.bench.envelope)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from ich_edge.errors import ConfigError
from ich_edge.runtime.bench import envelope as env

REPO = Path(__file__).resolve().parents[1]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_envelope_fields_and_finish():
    result = env.envelope("ich-edge-test/1", machine={"host": "vm"}, rows=[1])
    assert result["format"] == "ich-edge-test/1" and ISO.match(result["created_utc"])
    assert result["machine"] == {"host": "vm"} and result["rows"] == [1]
    start, end = result["load_average_start_end"]
    assert end is None and (start is None or len(start) == 3)
    env.finish(result)
    assert result["load_average_start_end"][0] == start
    assert result["load_average_start_end"][1] == env.load_average()
    assert env.envelope("x/1")["machine"]["host"]  # machine_info() by default


def test_result_file_name_format():
    result = {"created_utc": "2026-12-07T03:15:22Z", "machine": {"host": "vm"}}
    assert env.result_file_name(result, "peers") == "peers_20261207T031522Z_vm.json"
    assert env.result_file_name(result, "browser_latency", host="h100") == "browser_latency_20261207T031522Z_h100.json"
    with pytest.raises(ConfigError, match="machine.host"):
        env.result_file_name({"created_utc": "2026-12-07T03:15:22Z"}, "x")


def test_write_result_relativizes_paths_of_the_checkout(tmp_path):
    result = env.envelope("ich-edge-test/1", machine={"host": "vm"}, model=str(REPO / "android_demo_assets" / "model.tflite"),
                          command=f"python {REPO}/scripts/demo.py --out {REPO}", where=Path(REPO / "benchmarks"))
    path = env.write_result(result, "test", tmp_path, root=REPO)
    assert path.name == f"test_{result['created_utc'].replace('-', '').replace(':', '')}_vm.json"
    written = json.loads(path.read_text())
    assert written["model"] == "android_demo_assets/model.tflite"
    assert written["command"] == "python scripts/demo.py --out ." and written["where"] == "benchmarks"
    assert written["load_average_start_end"][1] == result["load_average_start_end"][1]  # finished on write
    assert result["model"].startswith("/")  # the caller's dict keeps its paths
    assert str(REPO) not in path.read_text()


def test_two_results_of_one_second_are_both_kept_and_sort_in_order(tmp_path):
    first = env.envelope("ich-edge-test/1", machine={"host": "vm"}, run=1)
    second, third = {**first, "run": 2}, {**first, "run": 3}
    paths = [env.write_result(r, "seed_spread", tmp_path) for r in (first, second, third)]
    assert len(set(paths)) == 3 and [json.loads(p.read_text())["run"] for p in paths] == [1, 2, 3]
    assert paths[1].name.endswith("Z-2_vm.json") and paths[2].name.endswith("Z-3_vm.json")
    assert sorted(paths, key=lambda p: p.name.split("_")[-2]) == paths  # readme_tables' "newest" order


def test_a_foreign_machine_path_in_text_is_refused(tmp_path):
    home = str(Path.home() / "runs" / "x")
    result = env.envelope("ich-edge-test/1", machine={"host": "vm"}, command=f"ich-edge bench --out {home}")
    with pytest.raises(ConfigError, match=r"absolute path of this machine at \$\.command"):
        env.write_result(result, "test", tmp_path / "results", root=REPO)
    assert not (tmp_path / "results").exists()  # nothing written
    named = env.write_result(result, "test", tmp_path, root=REPO, named={Path.home() / "runs": "<runs>"})
    assert json.loads(named.read_text())["command"] == "ich-edge bench --out <runs>/x"


def test_a_whole_foreign_path_keeps_only_its_last_folders():
    assert env.portable({"/scratch/a/b/c.tflite": "/scratch/a/b/c.tflite"}, REPO) == {
        "<outside>/a/b/c.tflite": "<outside>/a/b/c.tflite"}
    assert env.machine_paths({"p": "<outside>/tmp/a/b", "q": "a/tmp/b"}, REPO) == []


def _scripts_building_an_envelope_by_hand() -> list[str]:
    """Scripts of benchmarks/ whose source writes a ``created_utc`` key or calls getloadavg themselves."""
    found = []
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        keys = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value == "created_utc"}
        calls = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "getloadavg"}
        if keys or calls:
            found.append(path.name)
    return found


def test_benchmark_scripts_use_the_envelope():
    # readme_tables reads result files (no envelope of its own); dicom_throughput prints its own 1-minute load.
    assert _scripts_building_an_envelope_by_hand() == ["dicom_throughput.py"]
