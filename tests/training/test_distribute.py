"""Strategy choice, and two MultiWorkerMirroredStrategy workers on localhost for one tiny epoch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from ich_edge.errors import ConfigError
from ich_edge.training import distribute


def test_no_tf_config_means_one_machine(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.cluster_spec() is None
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}}))
    assert distribute.cluster_spec() is None  # a cluster of one is one machine
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        distribute.cluster_spec()


def test_mirrored_strategy_is_chief_and_writes_run_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = distribute.choose_strategy()
    assert type(strategy).__name__ == "MirroredStrategy"
    assert distribute.is_chief(strategy) and distribute.num_workers(strategy) == 1
    with distribute.WriteDir(tmp_path, strategy) as write_dir:
        assert write_dir.path == tmp_path
    assert distribute.any_worker(strategy, True) and not distribute.any_worker(strategy, False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def test_two_workers_on_localhost(tiny_cache, tmp_path):
    out = tmp_path / "RUN"
    workers = [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]
    args = [sys.executable, "-m", "ich_edge", "train", "--data", str(tiny_cache.root), "--out", str(out),
            "--width", "0.25", "--feature-dim", "8", "--rnn-units", "4", "--window-slices", "4",
            "--stride-slices", "2", "--batch-size", "2", "--epochs", "1"]
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=240)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for p, text in zip(processes, outputs):
        assert p.returncode == 0, text[-3000:]
    assert "on 2 device(s)" in outputs[0] and "on 2 device(s)" in outputs[1]
    assert (out / "model.keras").is_file() and (out / "report.json").is_file()
    assert "study AUC" in outputs[0] and "study AUC" not in outputs[1]  # only the chief evaluates
    assert json.loads((out / "history.json").read_text())[0]["epoch"] == 1
