"""prepare fails safe: a dead shard's lock is taken over at once, a full disk stops the run, an empty cache is an error."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys

import pytest

from ich_edge.ingest.cache import Cache
from ich_edge.cli import main
from ich_edge.errors import CacheError
from ich_edge.ingest.prepare import prepare
from ich_edge.ingest.scan_manifest import LOCK_FILE, MANIFEST_FILE
from ich_edge.synth import SynthConfig, write_synth_set
from ich_edge.transforms import PreprocessConfig

CONFIG = PreprocessConfig(input_size_px=16)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    write_synth_set(SynthConfig(studies=2, seed=4, matrix_px=32, slices_min=4, slices_max=4, workers=1), out)
    return out


def _error_lines(err: str) -> int:
    """Lines of the error (the progress lines before it are not part of it); the error is the last line."""
    lines = err.strip().splitlines()
    assert lines[-1].startswith("ich-edge: error: ")
    return sum(1 for line in lines if not line.startswith("prepare: "))


def _dead_pid() -> int:
    """The pid of a process of this host that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_lock_of_a_killed_prepare_is_taken_over_at_once(synth, tmp_path, monkeypatch):
    """A prepare killed during its header scan leaves its lock; the next run must not wait 5 minutes."""
    cache = tmp_path / "cache"
    cache.mkdir()
    lock = cache / LOCK_FILE
    lock.write_text(f"{socket.gethostname()} pid {_dead_pid()}\n")  # fresh mtime: the age rule would wait 300 s
    waits = []

    def no_sleep(seconds):
        raise AssertionError(f"waited for a dead holder's lock ({waits})")

    monkeypatch.setattr("ich_edge.ingest.scan_manifest.time.sleep", no_sleep)
    summary = prepare(synth / "dicom", cache, preprocess=CONFIG, workers=1, log=waits.append)
    assert summary.prepared_series == 2 and summary.headers_read > 0 and not waits
    assert (cache / MANIFEST_FILE).is_file() and not lock.exists()


def test_a_live_holders_lock_is_respected(synth, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / LOCK_FILE).write_text(f"{socket.gethostname()} pid {os.getpid()}\n")  # alive: this process

    class Waited(Exception):
        pass

    def sleep(seconds):
        raise Waited

    monkeypatch.setattr("ich_edge.ingest.scan_manifest.time.sleep", sleep)
    with pytest.raises(Waited):
        prepare(synth / "dicom", cache, preprocess=CONFIG, workers=1)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_cache_stops_prepare_with_one_line(synth, tmp_path, monkeypatch, capsys, code):
    """Not exit 0 with every series 'skipped' and blamed on the input files."""
    real = Cache.write

    def failing_write(self, item):
        raise OSError(code, os.strerror(code), str(self.path_for(item.series_uid).with_suffix(".npy")))

    monkeypatch.setattr(Cache, "write", failing_write)
    args = ["prepare", "--dicom", str(synth / "dicom"), "--out", str(tmp_path / "cache"), "--workers", "1", "--input-size-px", "16"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert _error_lines(err) == 1 and os.strerror(code) in err and "cannot write the cache" in err, err
    monkeypatch.setattr(Cache, "write", real)
    assert main(args) == 0  # space freed: the same command resumes
    assert len(Cache.open(tmp_path / "cache")) == 2


def test_a_full_disk_while_writing_the_manifest_is_one_line(synth, tmp_path, monkeypatch, capsys):
    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("ich_edge.ingest.scan_manifest.write_atomic_bytes", full)
    args = ["prepare", "--dicom", str(synth / "dicom"), "--out", str(tmp_path / "cache"), "--workers", "1", "--input-size-px", "16"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert _error_lines(err) == 1 and "No space left on device" in err and "Traceback" not in err, err


def test_prepare_that_skips_every_series_exits_3(synth, tmp_path, capsys):
    """inspect and predict exit 3 on input they cannot use; prepare must not exit 0 with an empty cache."""
    args = ["prepare", "--dicom", str(synth / "dicom"), "--out", str(tmp_path / "cache"), "--workers", "1",
            "--input-size-px", "16", "--min-slices", "50"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert _error_lines(err) == 1 and "prepared no series: all 2 series were skipped" in err and "problems" in err, err
    with pytest.raises(CacheError, match="holds no prepared series"):
        Cache.open(tmp_path / "cache").series()
