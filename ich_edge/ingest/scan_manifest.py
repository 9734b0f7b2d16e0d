"""The header scan of a DICOM folder, done once and shared by every shard of ``prepare``.

Reading 752,803 RSNA headers takes a while; eight shards that each read them all did it
eight times. The first shard (or ``ich-edge prepare --scan-only``) writes what it read to
``CACHE/manifest.json.gz`` (atomically); the others read that file instead.

* The manifest holds, per readable file, its :class:`~ich_edge.dicom.SliceInfo` with the
  path relative to the DICOM folder (shards on other machines may mount it elsewhere), the
  files left out and why, and the sha1 of the sorted file list. It is reused only when the
  folder lists the same files and the cache's patient key is the one it was made with;
  otherwise it is made again. No Patient ID is in it, only keyed pseudonyms
  (:func:`~ich_edge.dicom.privacy.keyed_pseudonym` with the cache's
  :func:`~ich_edge.dicom.privacy.patient_key`): the headers this module returns carry them.
* Concurrent shards: the one that creates ``CACHE/manifest.lock`` (``O_EXCL``) scans and
  touches the lock as it goes; the others wait for the manifest. A lock whose holder died
  is taken over: at once when the lock names a process of this host that no longer runs,
  else once untouched for :data:`STALE_LOCK_S` (a holder on another machine).

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
from ich_edge.dicom.privacy import keyed_pseudonym, patient_key
from ich_edge.errors import CacheError
from ich_edge.fileio import write_atomic_bytes

MANIFEST_FILE = "manifest.json.gz"
LOCK_FILE = "manifest.lock"
MANIFEST_FORMAT = 2  # 2: keyed patient pseudonyms
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


def key_id(key: bytes) -> str:
    """A public name of a patient key (not the key): which key a manifest's pseudonyms used."""
    return hashlib.sha256(b"ich-edge key id\0" + key).hexdigest()[:16]


def with_keyed_patients(headers: HeaderScan, key: bytes) -> HeaderScan:
    """``headers`` with each in-memory patient digest replaced by its keyed pseudonym."""
    infos = [
        info if info.patient_uid is None else dataclasses.replace(info, patient_uid=keyed_pseudonym(key, info.patient_uid))
        for info in headers.infos
    ]
    return HeaderScan(infos, headers.problems, headers.num_files, headers.base)


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


def _holder_is_gone(lock: Path) -> bool:
    """True when ``lock`` names a process of this host that no longer runs (it was killed)."""
    try:
        host, _, pid = lock.read_text(encoding="utf-8").strip().partition(" pid ")
        pid = int(pid)
    except (OSError, ValueError, UnicodeDecodeError):
        return False  # being written, or not ours: fall back to the age rule
    if host != socket.gethostname() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def _take_lock(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            if _holder_is_gone(lock) or time.time() - lock.stat().st_mtime > STALE_LOCK_S:
                lock.unlink(missing_ok=True)  # its holder died or stopped touching it
                return _take_lock_once(lock)
        except FileNotFoundError:
            pass
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{socket.gethostname()} pid {os.getpid()}\n")
    return True


def _take_lock_once(lock: Path) -> bool:
    """One more ``O_EXCL`` try after removing a dead holder's lock (another shard may win it)."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
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
    key_file: str | Path | None = None,
) -> ManifestScan:
    """Headers of every file under ``dicom_dir``: from ``cache_dir``'s manifest, else read and saved there.

    ``progress(done, total)`` while headers are read; ``wait(message)`` once when another
    shard holds the lock. Patient pseudonyms are keyed with the cache's patient key
    (``key_file``: the key the user gives, see :func:`~ich_edge.dicom.privacy.patient_key`).
    """
    dicom_dir, cache_dir = Path(dicom_dir), Path(cache_dir)
    files = list_files(dicom_dir)
    key = patient_key(cache_dir, key_file)
    if dicom_dir.is_file():
        headers = read_headers(dicom_dir, workers=workers, files=files)
        return ManifestScan(with_keyed_patients(headers, key), 1, cache_dir / MANIFEST_FILE)
    digest = f"{file_list_digest(files, dicom_dir)}:{key_id(key)}"  # these files, this key
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

        headers = with_keyed_patients(read_headers(dicom_dir, workers=workers, progress=touch, files=files), key)
        payload = _encode(headers, digest)
        try:
            write_atomic_bytes(path, lambda handle: handle.write(payload))
        except OSError as err:
            raise CacheError(f"cannot write {path} ({err.strerror or err}); check that the cache folder is writable and has free space") from err
        return ManifestScan(headers, len(files), path)
    finally:
        lock.unlink(missing_ok=True)
