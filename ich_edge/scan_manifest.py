"""The header scan of a DICOM folder, done once and shared by every shard of ``prepare``.

Reading 752,803 RSNA headers takes a while; eight shards that each read them all did it
eight times. The first shard (or ``ich-edge prepare --scan-only``) writes what it read to
``CACHE/manifest.json.gz`` (atomically); the others read that file instead.

* The manifest holds, per readable file, its :class:`~ich_edge.dicom.SliceInfo` with the
  path relative to the DICOM folder (shards on other machines may mount it elsewhere), the
  files left out and why, and the sha1 of the sorted file list. It is reused only when the
  folder lists the same files; otherwise it is made again. No Patient ID is in it, only
  pseudonyms (:func:`~ich_edge.dicom.patient_pseudonym`).
* Concurrent shards: the one that creates ``CACHE/manifest.lock`` (``O_EXCL``) scans and
  touches the lock as it goes; the others wait for the manifest. A lock untouched for
  :data:`STALE_LOCK_S` (its holder died) is taken over.

Runtime tier: the standard library and :mod:`ich_edge.dicom` only.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ich_edge.dicom import HeaderScan, SliceInfo, list_files, read_headers
from ich_edge.errors import CacheError
from ich_edge.fileio import write_atomic_bytes

MANIFEST_FILE = "manifest.json.gz"
LOCK_FILE = "manifest.lock"
MANIFEST_FORMAT = 1
#: A lock not touched for this long belongs to a shard that died; it is taken over.
STALE_LOCK_S = 300.0
_POLL_S = 1.0
_FIELDS = [f.name for f in dataclasses.fields(SliceInfo)]
_TUPLES = {"position_mm", "orientation", "pixel_spacing_mm", "window_hu", "image_type"}


@dataclass(frozen=True)
class ManifestScan:
    """A header scan and where it came from: ``headers_read`` is 0 when the manifest was reused."""

    headers: HeaderScan
    headers_read: int
    manifest_path: Path


def file_list_digest(files: list[Path], base: Path) -> str:
    """sha1 of the sorted relative paths: the identity of a folder's file list."""
    digest = hashlib.sha1()
    for rel in sorted(_relative(f, base) for f in files):
        digest.update(rel.encode("utf-8") + b"\n")
    return digest.hexdigest()


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.name


def _encode(headers: HeaderScan, digest: str) -> bytes:
    rows = []
    for info in headers.infos:
        row = [getattr(info, name) for name in _FIELDS]
        row[_FIELDS.index("path")] = _relative(info.path, headers.base)
        rows.append(row)
    doc = {
        "format": MANIFEST_FORMAT,
        "file_list_sha1": digest,
        "num_files": headers.num_files,
        "problems": headers.problems,
        "fields": _FIELDS,
        "slices": rows,
    }
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), compresslevel=3)


def _decode(doc: dict, base: Path) -> HeaderScan:
    if doc.get("format") != MANIFEST_FORMAT or doc.get("fields") != _FIELDS:
        raise ValueError("written by another version of ich-edge")
    infos = []
    for row in doc["slices"]:
        values = dict(zip(_FIELDS, row))
        values["path"] = base / values["path"]
        for name in _TUPLES:
            if values[name] is not None:
                values[name] = tuple(values[name])
        infos.append(SliceInfo(**values))
    return HeaderScan(infos, list(doc["problems"]), int(doc["num_files"]), base)


def read_manifest(path: Path, base: Path, digest: str) -> HeaderScan | None:
    """The manifest at ``path`` if it describes exactly these files, else None."""
    try:
        doc = json.loads(gzip.decompress(path.read_bytes()))
        if doc.get("file_list_sha1") != digest:
            return None
        return _decode(doc, base)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None  # damaged or from another version: scanned again and replaced


def _take_lock(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            if time.time() - lock.stat().st_mtime > STALE_LOCK_S:
                lock.unlink(missing_ok=True)  # its holder stopped touching it
        except FileNotFoundError:
            pass
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{socket.gethostname()} pid {os.getpid()}\n")
    return True


def scan_with_manifest(
    dicom_dir: str | Path,
    cache_dir: str | Path,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    wait: Callable[[str], None] | None = None,
) -> ManifestScan:
    """Headers of every file under ``dicom_dir``: from ``cache_dir``'s manifest, else read and saved there.

    ``progress(done, total)`` while headers are read; ``wait(message)`` once when another
    shard holds the lock.
    """
    dicom_dir, cache_dir = Path(dicom_dir), Path(cache_dir)
    files = list_files(dicom_dir)
    if dicom_dir.is_file():
        return ManifestScan(read_headers(dicom_dir, workers=workers, files=files), 1, cache_dir / MANIFEST_FILE)
    digest = file_list_digest(files, dicom_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path, lock = cache_dir / MANIFEST_FILE, cache_dir / LOCK_FILE
    waited = False
    while True:
        found = read_manifest(path, dicom_dir, digest)
        if found is not None:
            return ManifestScan(found, 0, path)
        if _take_lock(lock):
            break
        if wait and not waited:
            wait(f"another prepare ({lock}) is reading the headers; waiting for {path}")
            waited = True
        time.sleep(_POLL_S)
    try:
        found = read_manifest(path, dicom_dir, digest)  # written while we took the lock
        if found is not None:
            return ManifestScan(found, 0, path)
        last_touch = [time.monotonic()]

        def touch(done: int, total: int) -> None:
            if time.monotonic() - last_touch[0] > 10.0:
                os.utime(lock)
                last_touch[0] = time.monotonic()
            if progress:
                progress(done, total)

        headers = read_headers(dicom_dir, workers=workers, progress=touch, files=files)
        payload = _encode(headers, digest)
        try:
            write_atomic_bytes(path, lambda handle: handle.write(payload))
        except OSError as err:
            raise CacheError(f"cannot write {path} ({err}); check that the cache folder is writable") from err
        return ManifestScan(headers, len(files), path)
    finally:
        lock.unlink(missing_ok=True)
