"""``ich-edge parity --platform aarch64``: the deployment question answered on LiteRT's aarch64
kernels (emulated, ``.ci/provision-arm.sh``), on the tiny run's held-out studies.

Slow: the tiny run and its converted files need TensorFlow. Skipped when the emulator is not
provisioned (under CI=true that fails).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ich_edge.cli import main
from ich_edge.runtime.emulation import PROVISION_COMMAND, provisioned_runtimes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps"))
from app_tools import require  # noqa: E402


@pytest.mark.slow
def test_parity_on_emulated_aarch64_passes_the_good_file_and_fails_the_bad_one(tiny_run, converted, tmp_path, capsys):
    require(any(r.arch == "aarch64" for r in provisioned_runtimes()), "emulated aarch64 LiteRT", PROVISION_COMMAND)
    run_dir, cache_dir, _ = tiny_run
    out = tmp_path / "report.json"
    code = main(["parity", "--reference", str(run_dir), "--converted-from", str(converted["bad_run"]),
                 "--data", str(cache_dir), "--model", str(converted["fp32"]), "--model", str(converted["bad_fp32"]),
                 "--bootstrap", "100", "--platform", "aarch64", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1, captured.err  # the bad file fails deployment parity on the aarch64 kernels too
    report = json.loads(out.read_text())
    assert report["config"]["platform"] == "aarch64"
    verdicts = {Path(m["path"]): m["deployment"]["verdict"] for m in report["models"]}
    assert verdicts == {converted["fp32"]: "PASS", converted["bad_fp32"]: "FAIL"}
    notes = [n for n in report["notes"] if n.startswith("platform aarch64")]
    assert len(notes) == 2 and all("aarch64 ai-edge-litert" in n and "s per study (24 studies" in n for n in notes)
    good = next(m for m in report["models"] if Path(m["path"]) == converted["fp32"])
    assert good["conversion"]["verdict"] == "PASS"  # aarch64 fp32 kernels within 1e-4 of Keras
