"""Atomic output files: the one way ich-edge writes a file the caller asked for.

A file is written under a temporary name in its destination folder, made readable
(0644: ``mkstemp`` alone gives 0600), then renamed into place, so a killed or failing
writer never leaves a half-written file under the final name (``convert`` writes a model's
sidecar inside the model's :func:`atomic_output`, so the model appears last); a folder
written in a staging folder is put in place with :func:`replace_dir`. No other module renames
output files (``tests/test_fileio.py`` checks).

``--force`` replaces only what a verb wrote: a verb that writes a folder leaves the marker
:data:`OUTPUT_MARKER` in it (:func:`mark_output`, naming the verb), and :func:`refuse_existing`
lets ``--force`` replace a non-empty folder only when that marker names the same verb and
the folder holds nothing the verb does not write; a folder of the user's own files is never
deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ich_edge.errors import ConfigError, OutputExistsError

#: The file that says which verb wrote a folder (JSON ``{"verb": ..., "written_by": ...}``).
OUTPUT_MARKER = ".ich-edge-output.json"


def mark_output(folder: str | Path, verb: str) -> None:
    """Record in ``folder`` that ``ich-edge <verb>`` wrote it (what ``--force`` may replace later)."""
    from ich_edge import __version__

    if output_owner(folder) != verb:
        write_json_atomic(Path(folder) / OUTPUT_MARKER, {"verb": verb, "written_by": f"ich-edge {__version__}"})


def output_owner(folder: str | Path) -> str | None:
    """The verb named by ``folder``'s :data:`OUTPUT_MARKER`, or None (no marker, or unreadable)."""
    try:
        verb = json.loads((Path(folder) / OUTPUT_MARKER).read_text(encoding="utf-8")).get("verb")
    except (OSError, ValueError, AttributeError):
        return None
    return verb if isinstance(verb, str) else None


def _foreign_entries(folder: Path, written) -> list[str]:
    """Top-level names in ``folder`` that are neither in ``written`` nor temporaries of them."""
    known = set(written) | {OUTPUT_MARKER}
    return sorted(p.name for p in folder.iterdir() if p.name not in known and not any(p.name.startswith(f".{k}.") for k in known))


def refuse_foreign_folder(folder: str | Path, verb: str, what: str = "", written=None) -> None:
    """Refuse to replace the non-empty ``folder`` unless ``ich-edge <verb>`` wrote it.

    It must carry :data:`OUTPUT_MARKER` naming ``verb`` (a folder without a marker is
    accepted only when ``written`` is given and every entry is one of those names: an output
    of this verb from before markers). With ``written``, an entry the verb does not write
    (the user's own file) is refused too. Raises :class:`OutputExistsError` (exit 3).
    """
    folder = Path(folder)
    if not output_exists(folder) or not folder.is_dir():
        return
    label = what or f"{verb} --out"
    owner = output_owner(folder)
    foreign = _foreign_entries(folder, written) if written is not None else []
    if owner is not None and owner != verb:
        raise OutputExistsError(f"{label} {folder} was written by `ich-edge {owner}`, not {verb}; choose another path")
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise OutputExistsError(f"{label} {folder} holds {shown}, which {verb} did not write; move them away or choose another path")
    if owner is None and written is None:
        raise OutputExistsError(
            f"{label} {folder} is a folder ich-edge {verb} did not write (no {OUTPUT_MARKER}); --force replaces only "
            "a verb's own output: move your files away or choose another path"
        )


def output_exists(path: str | Path) -> bool:
    """True when ``path`` is a file, or a folder holding anything: an output a verb must not overwrite."""
    path = Path(path)
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


def refuse_existing(path: str | Path, force: bool, what: str = "", written=None) -> None:
    """The one ``--force`` rule of every verb: an existing output is replaced only with ``force``.

    Raises :class:`~ich_edge.errors.OutputExistsError` (exit 3) when ``path`` exists (a file,
    or a non-empty folder) and ``force`` is False; its one line says to add ``--force``. With
    ``force``, a non-empty folder is replaced only when the verb named first in ``what``
    (``"import --out"``: import) wrote it (:func:`refuse_foreign_folder`; ``written``: the
    top-level names that verb writes).
    """
    if not output_exists(path):
        return
    if not force:
        kind = "folder" if Path(path).is_dir() else "file"
        raise OutputExistsError(f"{what or 'the output'} {path} exists ({kind}); add --force to replace it, or choose another path")
    if Path(path).is_dir():
        verb = (what or "ich-edge").split()[0].rstrip(":")
        refuse_foreign_folder(path, verb, what, written)


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


def read_json(path: str | Path, what: str, remedy: str, error: type[Exception] = ConfigError):
    """The JSON document in ``path``: the one way ich-edge reads a JSON file it was given.

    Raises ``error`` (one line) when the file is missing (``"PATH is missing: WHAT; REMEDY"``)
    or unreadable or not JSON (``"PATH is not valid JSON (why); REMEDY"``).
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise error(f"{path} is missing: {what}; {remedy}") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{path} is not valid JSON ({err}); {remedy}") from err


def read_optional_json(path: str | Path):
    """The JSON document in ``path``, or None when it is missing, unreadable or not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json_atomic(path: str | Path, data) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    payload = (json.dumps(data, indent=2) + "\n").encode("utf-8")
    write_atomic_bytes(path, lambda handle: handle.write(payload))


def replace_dir(staging: str | Path, target: str | Path, verb: str | None = None, written=None, mark: bool = True) -> None:
    """Move the finished folder ``staging`` to ``target`` (same filesystem).

    An existing ``target`` is set aside first and deleted only once ``staging`` is in place;
    if the move fails it is put back, so ``target`` is always the old or the new folder.
    With ``verb``, ``staging`` is marked as that verb's output (:func:`mark_output`) and a
    non-empty ``target`` that verb did not write is refused, never deleted
    (:func:`refuse_foreign_folder` with ``written``). ``mark=False`` leaves the marker out
    of a folder that ships as it is (assets); its fixed ``written`` names then identify it.
    """
    staging, target = Path(staging), Path(target)
    if verb is not None:
        refuse_foreign_folder(target, verb, written=written)
        if mark:
            mark_output(staging, verb)
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


def sha256_of(path: str | Path) -> str:
    """SHA-256 (hex) of a file, or of a folder's files (their sorted relative paths and contents)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: nothing to take the sha256 of")
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for item in files:
        if path.is_dir():
            digest.update(str(item.relative_to(path)).encode())
        with open(item, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def folder_names(record):
    """``record`` (a JSON value) with every absolute path replaced by its last name.

    For what leaves the machine inside a model file or app assets: the folder layout of the
    machine that trained the model (a user name, a hospital share, a patient folder) is none
    of the reader's business. Stricter than
    :func:`ich_edge.runtime.bench.envelope.portable` (result files in this repository keep a
    path relative to it, or the last three folders).
    """
    if isinstance(record, dict):
        return {key: folder_names(value) for key, value in record.items()}
    if isinstance(record, list):
        return [folder_names(value) for value in record]
    if isinstance(record, str) and _is_machine_path(record):
        return Path(record.replace("\\", "/").rstrip("/")).name
    return record


def _is_machine_path(text: str) -> bool:
    """True for a path that names a place on some machine: POSIX or home-relative (``/``, ``~``), a
    Windows drive, share or long path (``C:\\``, ``\\\\server``, ``\\\\?\\``) or a ``file:`` URL."""
    drive = len(text) > 2 and text[0].isalpha() and text[1:3] in (":\\", ":/")
    return drive or text.startswith(("/", "\\", "~", "file:"))
