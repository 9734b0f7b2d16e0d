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
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections import Counter

from ich_edge.errors import DicomError, IchEdgeError, NoSeriesError, SeriesError

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
