"""Atomic output files: the one way ich-edge writes a file the caller asked for.

A file is written under a temporary name in its destination folder, made readable
(0644: ``mkstemp`` alone gives 0600), then renamed into place, so a killed or failing
writer never leaves a half-written file under the final name. Files that belong together
(a model and its sidecar) are committed with :func:`write_files_atomic`; a folder written
in a staging folder is put in place with :func:`replace_dir`. No other module renames
output files (``tests/test_fileio.py`` checks).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ich_edge.errors import OutputExistsError


def output_exists(path: str | Path) -> bool:
    """True when ``path`` is a file, or a folder holding anything: an output a verb must not overwrite."""
    path = Path(path)
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


def refuse_existing(path: str | Path, force: bool, what: str = "") -> None:
    """The one ``--force`` rule of every verb: an existing output is replaced only with ``force``.

    Raises :class:`~ich_edge.errors.OutputExistsError` (exit 3) when ``path`` exists (a file,
    or a non-empty folder) and ``force`` is False; its one line says to add ``--force``.
    """
    if not force and output_exists(path):
        kind = "folder" if Path(path).is_dir() else "file"
        raise OutputExistsError(f"{what or 'the output'} {path} exists ({kind}); add --force to replace it, or choose another path")


@contextmanager
def atomic_output(path: str | Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    The temporary name keeps the final suffix (``.png``, ``.json``...) so writers that pick a
    format from the file name (matplotlib) behave as for the final path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic_bytes(path: str | Path, write: Callable) -> None:
    """Call ``write(handle)`` on a binary handle of a temporary file, then move it to ``path``."""
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        write(handle)


def write_json_atomic(path: str | Path, data) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    payload = (json.dumps(data, indent=2) + "\n").encode("utf-8")
    write_atomic_bytes(path, lambda handle: handle.write(payload))


def write_files_atomic(payloads) -> None:
    """Write several files that belong together: ``payloads`` is ``[(path, bytes), ...]``.

    Every file is written under a temporary name first; only then are they renamed into
    place, one after the other. On failure, the files this call created are removed (a file
    that existed before keeps its old or its new content, never a partial one).
    """
    payloads = [(Path(path), bytes(payload)) for path, payload in payloads]
    existed = {path: path.exists() for path, _ in payloads}
    temps, done = [], []
    try:
        for path, payload in payloads:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append(Path(tmp))
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are shipped and shared
        for (path, _), tmp in zip(payloads, temps):
            os.replace(tmp, path)
            done.append(path)
    except BaseException:
        for path in done:
            if not existed[path]:
                path.unlink(missing_ok=True)
        raise
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def replace_dir(staging: str | Path, target: str | Path) -> None:
    """Move the finished folder ``staging`` to ``target`` (same filesystem).

    An existing ``target`` is set aside first and deleted only once ``staging`` is in place;
    if the move fails it is put back, so ``target`` is always the old or the new folder.
    """
    staging, target = Path(staging), Path(target)
    previous = None
    if target.exists():
        previous = target.with_name(f".{target.name}.old-{os.getpid()}")
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(target, previous)
    try:
        os.replace(staging, target)
    except BaseException:
        if previous is not None:
            os.replace(previous, target)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
