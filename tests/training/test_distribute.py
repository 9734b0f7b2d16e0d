"""Strategy choice, and two MultiWorkerMirroredStrategy workers on localhost for one tiny epoch."""

from __future__ import annotations

import json
import os
import re
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


def _run_workers(args_of_worker, timeout=600):
    workers = [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(args_of_worker(index), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=timeout)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    return [p.returncode for p in processes], outputs


def _train_args(cache, out, *extra):
    return [sys.executable, "-m", "ich_edge", "train", "--data", str(cache), "--out", str(out),
            "--width", "0.25", "--feature-dim", "8", "--rnn-units", "4", "--window-slices", "4",
            "--stride-slices", "2", "--batch-size", "2", *extra]


def test_two_workers_on_localhost(tiny_cache, tmp_path):
    from ich_edge.training import data

    out = tmp_path / "RUN"
    codes, outputs = _run_workers(lambda index: _train_args(tiny_cache.root, out, "--epochs", "1"))
    for code, text in zip(codes, outputs):
        assert code == 0, text[-3000:]
    assert "on 2 device(s)" in outputs[0] and "on 2 device(s)" in outputs[1]
    assert (out / "model.keras").is_file() and (out / "report.json").is_file()
    assert "study AUC" in outputs[0] and "study AUC" not in outputs[1]  # only the chief evaluates
    assert json.loads((out / "history.json").read_text())[0]["epoch"] == 1

    # Each worker read only its share of the epoch's window plan; the shares are disjoint and cover it.
    logged = {}
    for text in outputs:
        match = re.search(r"input share: worker (\d)/2 reads (\d+) of (\d+) windows of epoch 1, plan (\w+), share (\w+)", text)
        assert match, text[-3000:]
        logged[int(match[1])] = (int(match[2]), int(match[3]), match[4], match[5])
    assert set(logged) == {0, 1}
    split = data.Split.from_dict(json.loads((out / "split.json").read_text()))
    train_series = data.select_studies(tiny_cache.series(), split.train_studies)
    plan_of_epoch, steps, _, _ = data.train_plan(train_series, 4, 2, seed=0, augment=data.AugmentConfig(rotation_deg=10.0))
    plan = plan_of_epoch(0)
    shares = [data.worker_share(len(plan), 2, w, 2) for w in range(2)]
    assert set(shares[0]).isdisjoint(shares[1]) and sorted([*shares[0], *shares[1]]) == list(range(len(plan)))
    for worker in range(2):
        read, total, plan_digest, share_digest = logged[worker]
        assert (read, total, plan_digest) == (len(plan) // 2, len(plan), plan.digest())
        assert share_digest == plan.take(shares[worker]).digest()  # what that worker really read
    assert logged[0][3] != logged[1][3]


def test_workers_that_do_not_share_run_dir_refuse_to_resume(tiny_cache, tmp_path):
    """The chief has finished epoch 1 in RUN_DIR; a worker that sees another (empty) folder would
    start at epoch 0: both refuse with the remedy instead of training out of step."""
    import shutil

    from ich_edge.cli import main

    shared = tmp_path / "RUN"
    assert main(["train", "--data", str(tiny_cache.root), "--out", str(shared), "--width", "0.25", "--feature-dim", "8",
                 "--rnn-units", "4", "--window-slices", "4", "--stride-slices", "2", "--batch-size", "2", "--epochs", "1"]) == 0
    moved = tmp_path / "elsewhere" / "RUN"  # the same cache mounted at another path: still the same run
    shutil.copytree(tiny_cache.root, tmp_path / "elsewhere" / "cache")
    codes, outputs = _run_workers(lambda index: _train_args(
        tmp_path / "elsewhere" / "cache", shared if index == 0 else moved, "--epochs", "2"))
    for code, text in zip(codes, outputs):
        assert code == 2, text[-3000:]
        assert "resume from different epochs ([0, 1])" in text and "shared filesystem" in text
