"""``benchmarks/peers.py`` tells the files converted from ``--reference`` from the others by model digest."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import peers  # noqa: E402  benchmarks/peers.py

from ich_edge.fileio import sha256_of  # noqa: E402


def test_a_file_is_matched_to_its_source_run_by_digest_wherever_the_folder_now_lies(tmp_path):
    run, qat = tmp_path / "moved" / "run", tmp_path / "qat"
    for folder, weights in ((run, b"float weights"), (qat, b"qat weights")):
        folder.mkdir(parents=True)
        (folder / "model.keras").write_bytes(weights)
    float_source = {"path": "run", "model_sha256": sha256_of(run / "model.keras")}
    assert peers._converted_from(float_source, run)
    assert not peers._converted_from({"path": "qat", "model_sha256": sha256_of(qat / "model.keras")}, run)
    # files converted before the description held a digest: their absolute path
    assert peers._converted_from({"path": str(run)}, run) and not peers._converted_from({"path": str(qat)}, run)
