"""Exceptions of ich-edge, and the exit code each one ends a command with.

Every error a user can cause derives from :class:`IchEdgeError`; the CLI turns these into
one line on stderr and the class's :attr:`~IchEdgeError.exit_code` (a traceback only with
``--debug``). Each class has a default message saying how to fix the problem.

Exit codes: each class's ``exit_code`` (3, could not run, unless a class says otherwise) is
the number behind an ``EXIT_*`` constant of :mod:`ich_edge.cli`; their one table of meanings
is in docs/cli.md ("Exit codes").
"""

from __future__ import annotations


class IchEdgeError(Exception):
    """Base class of ich-edge's own errors."""

    default_message = "ich-edge failed"
    #: Could not run: unusable input or environment (see the module's table).
    exit_code = 3

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)


class ConfigError(IchEdgeError, ValueError):
    """An option or configuration value is invalid."""

    default_message = "invalid configuration value; see `ich-edge COMMAND --help`"
    exit_code = 2


class GateFailedError(IchEdgeError):
    """A quality gate failed (e.g. parity FAIL): the command ran, the result is a no."""

    default_message = "a gate failed; see the FAIL lines above"
    exit_code = 1


class InsufficientEvidenceError(IchEdgeError):
    """The command ran but the evidence is too thin to judge (e.g. too few test studies)."""

    default_message = "not enough evidence to judge; use more studies"
    exit_code = 4


class DicomError(IchEdgeError):
    """A DICOM file cannot be used."""

    default_message = "not a usable DICOM file"


class NotDicomError(DicomError):
    default_message = "not a DICOM file (no DICM preamble and no parseable data set)"


class NoPixelDataError(DicomError):
    default_message = "the file has no (7FE0,0010) Pixel Data; it is not an image slice"


class PixelDataError(DicomError):
    """Pixel data is truncated, corrupt or in a transfer syntax we cannot decode."""

    default_message = (
        "pixel data cannot be decoded; for compressed files install the pylibjpeg "
        "plugins (pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle)"
    )


class ImplausiblePixelsError(PixelDataError):
    """The pixel module is mis-declared: the stored values cannot be trusted to mean HU.

    A missing or malformed (0028,1052) Rescale Intercept or (0028,1053) Rescale Slope, pixel
    data longer than Rows x Columns x Bits Allocated / 8, HU outside what a head holds. The
    series is UNREADABLE: ``predict`` gives no NEGATIVE/POSITIVE for it, ``prepare`` skips it.
    """

    default_message = "the pixel module is mis-declared; the stored values cannot be turned into HU"


class NotCTError(DicomError):
    default_message = "the series is not CT (Modality is not 'CT'); ich-edge reads head CT only"


class SeriesError(IchEdgeError):
    """A series is inconsistent (mixed matrix sizes, duplicate positions, no usable slice)."""

    default_message = "the series is inconsistent"


class UnreadableSeriesError(SeriesError):
    """A series whose pixels cannot be trusted (mis-declared pixel module, HU no head holds).

    ``reasons`` lists why. ``predict`` gives such a series the verdict UNREADABLE (neither
    NEGATIVE nor POSITIVE), ``prepare`` skips it, ``inspect`` lists the reasons.
    """

    default_message = "the series is UNREADABLE: its pixels cannot be trusted to be HU"

    def __init__(self, message: str | None = None, reasons: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reasons = tuple(reasons) or (str(self),)


class NoSeriesError(IchEdgeError):
    default_message = "no readable DICOM series found; pass a .dcm file or a folder of them"


class LabelsError(IchEdgeError):
    default_message = (
        "the labels CSV is not in RSNA format (ID,Label with ID_<hex>_<label>) "
        "nor a study-level CSV (study_uid plus the six label columns)"
    )


class CacheError(IchEdgeError):
    default_message = "the prepared cache is missing or incomplete; run `ich-edge prepare` first"


class MissingDependencyError(IchEdgeError):
    """An optional package is needed for this command."""

    default_message = "a required package is not installed"


class ModelError(IchEdgeError):
    """A model file or run directory cannot be used."""

    default_message = "the model cannot be used"


class ConversionError(IchEdgeError):
    default_message = "TFLite conversion failed"


class OutputExistsError(IchEdgeError):
    default_message = "the output exists; pass --force to overwrite it"


class MeasurementError(IchEdgeError):
    """A requested measurement could not be made (e.g. a bench row that failed to run)."""

    default_message = "a measurement failed; see the failed rows above"
