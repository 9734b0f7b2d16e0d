"""Keeping patient identifiers out of what ich-edge prints and writes.

ich-edge reads no patient fields into its results: reports, JSON, PNGs, caches and assets
carry UIDs, geometry, pixels and probabilities only. What can still carry an identifier is
text that quotes a header value: pydicom quotes the offending value when it warns about or
fails on a malformed element (``Invalid value for VR IS: 'Doe^Jane'``), and scanners put
names in odd places. Every verb therefore shows such text only through this module:

* :func:`mask_quoted` replaces each quoted value (``'...'`` or ``"..."``, escapes
  included) with ``'...'``;
* :func:`warning_notes` folds caught warnings into one masked line per kind;
* :func:`masked_messages` (used by ``ich_edge.cli.main`` around every verb) masks warnings
  printed by Python's default hook and the records of pydicom's logger;
* :func:`error_line` is the one line the CLI prints for an error; errors raised while
  reading DICOM are masked.

Patient pseudonyms
    A cache records, per series, a pseudonym of (0010,0020) Patient ID for the patient-level
    split. A hash with a public salt can be reversed by hashing candidate IDs (a 7-digit ID
    space takes seconds), so the stored pseudonym is keyed: ``P`` + the first 16 hex digits
    of HMAC-SHA256(key, patient digest), where the key is 32 random bytes kept beside the cache
    in :data:`KEY_FILE` (mode 0600, created by the first prepare run and reused by its shards
    and resumed runs), or a key file the user gives (``prepare --patient-key FILE``, e.g.
    another cache's, so a test cache and a training cache agree on patients). Without the key
    the pseudonyms cannot be tested against candidate IDs; whoever holds the key can, so it
    travels with the cache only where the patient IDs could. The patient digest
    (:func:`ich_edge.dicom.reader.patient_pseudonym`) lives in memory only.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import warnings
from collections import Counter
from pathlib import Path

from ich_edge.errors import CacheError, DicomError, IchEdgeError, NoSeriesError, SeriesError

#: The cache's patient key: 64 hex digits (32 random bytes), mode 0600.
KEY_FILE = "patient.key"
_KEY_BYTES = 32

MASK = "'...'"
_QUOTED = re.compile(r"""'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*\"""")
#: Errors whose text can quote DICOM header values.
DICOM_ERRORS = (DicomError, SeriesError, NoSeriesError)


def mask_quoted(text: str) -> str:
    """``text`` with every quoted value replaced by ``'...'`` (they could be names or IDs)."""
    return _QUOTED.sub(MASK, str(text))


def mask_all(lines) -> list[str]:
    """:func:`mask_quoted` of each line."""
    return [mask_quoted(line) for line in lines]


def warning_notes(caught: list[warnings.WarningMessage]) -> list[str]:
    """One line per kind of caught warning (its first line, masked), with a count."""
    messages = (mask_quoted(str(item.message).strip().splitlines()[0]) for item in caught if str(item.message).strip())
    return [f"pydicom warned {count}x: {message}" for message, count in Counter(messages).items()]


def error_line(err: IchEdgeError) -> str:
    """The text the CLI prints for ``err``: masked where it comes from reading DICOM."""
    return mask_quoted(str(err)) if isinstance(err, DICOM_ERRORS) else str(err)


class _MaskRecords(logging.Filter):
    """Masks quoted values in log records (pydicom logs what it warns)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # One masked line: no traceback (pydicom logs decoder failures with exc_info).
        record.msg = " ".join(mask_quoted(record.getMessage()).split("\n"))
        record.args = ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


@contextlib.contextmanager
def masked_messages():
    """Inside the block, warnings printed by Python and pydicom's log records are masked."""
    original = warnings.showwarning
    logger = logging.getLogger("pydicom")
    records = _MaskRecords()

    def show(message, category, filename, lineno, file=None, line=None):
        original(mask_quoted(str(message)), category, filename, lineno, file, line)

    warnings.showwarning = show
    logger.addFilter(records)
    try:
        yield
    finally:
        warnings.showwarning = original
        logger.removeFilter(records)


def keyed_pseudonym(key: bytes, patient_digest: str) -> str:
    """The stored pseudonym of a patient: ``P`` + 16 hex of HMAC-SHA256(``key``, digest)."""
    return "P" + hmac.new(key, patient_digest.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def _read_key(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CacheError(f"{path} is not a patient key (64 hex digits); restore it or prepare again into a new --out") from err
    if len(key) < 16:
        raise CacheError(f"{path} holds a patient key of {len(key)} bytes; a key needs at least 16 random bytes (64 hex digits)")
    return key


def _has_series(cache_dir: Path) -> bool:
    return any((cache_dir / "series").glob("*.json"))


def patient_key(cache_dir: str | Path, key_file: str | Path | None = None) -> bytes:
    """The patient key of the cache ``cache_dir``: its :data:`KEY_FILE`, made once if missing.

    ``key_file`` (``prepare --patient-key``) gives the key instead and is copied into the
    cache; a cache keyed otherwise is refused. A cache that already holds series but no key
    (prepared with the public-salt pseudonym) is refused: its pseudonyms would not match.
    The file is created atomically (written under a temporary name, then linked), so
    shards that start together agree on one key.
    """
    cache_dir = Path(cache_dir)
    path = cache_dir / KEY_FILE
    given = None if key_file is None else _read_key(Path(key_file))
    if path.is_file():
        key = _read_key(path)
        if given is not None and not hmac.compare_digest(key, given):
            raise CacheError(f"{cache_dir} is keyed with its own {KEY_FILE}, not with {key_file}; prepare into a new --out to use that key")
        return key
    if _has_series(cache_dir):
        raise CacheError(f"{cache_dir} was prepared before patient pseudonyms were keyed (no {KEY_FILE}); "
                         "prepare again into a new --out, or add --force to start over")
    key = given if given is not None else secrets.token_bytes(_KEY_BYTES)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{KEY_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(key.hex() + "\n")
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # fails if another shard made the key first
        except FileExistsError:
            return patient_key(cache_dir, key_file)
    finally:
        tmp.unlink(missing_ok=True)
    return key


def same_patient_key(cache_a: str | Path, cache_b: str | Path) -> bool | None:
    """Whether two caches were keyed alike (True/False), or None when either has no key file."""
    paths = [Path(c) / KEY_FILE for c in (cache_a, cache_b)]
    if not all(p.is_file() for p in paths):
        return None
    return hmac.compare_digest(_read_key(paths[0]), _read_key(paths[1]))
