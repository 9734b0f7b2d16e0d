"""Atomic output files: the one way ich-edge writes a file the caller asked for.

A file is written under a temporary name in its destination folder, made readable
(0644: ``mkstemp`` alone gives 0600), then renamed into place, so a killed or failing
writer never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
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
