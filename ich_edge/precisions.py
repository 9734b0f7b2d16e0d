"""The one table of precisions: names, files, what each needs, and the order in which to ship them.

TensorFlow-free, so that the runtime tier (bench, assets), the demo and the benchmarks read
the same rows as ``ich-edge convert`` (whose recipes in ``converters`` must match it; a test
checks). Ship order: the smallest, fastest file first, as long as it passes both parity
questions (``scripts/demo.py``): an integer file trained for int8 (qat-int8), then int8 with
float only where int8 breaks parity (int8-mixed), then post-training int8, then fp16 and fp32.
``dynamic`` is never shipped: it is the slowest file on CPUs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Precision:
    """One row: ``name`` (``--precision``), whether it converts a QAT_DIR, needs calibration data, has integer weights."""

    name: str
    needs_qat: bool
    needs_calibration: bool
    integer: bool

    @property
    def file_name(self) -> str:
        return f"cnn_lstm_{self.name}.tflite"


#: The names, for code that means one precision (grep finds a precision name only in this table and in tests).
FP32, FP16, DYNAMIC, INT8, INT8_MIXED, QAT_INT8 = "fp32", "fp16", "dynamic", "int8", "int8-mixed", "qat-int8"

TABLE: tuple[Precision, ...] = (
    Precision(FP32, needs_qat=False, needs_calibration=False, integer=False),
    Precision(FP16, needs_qat=False, needs_calibration=False, integer=False),
    Precision(DYNAMIC, needs_qat=False, needs_calibration=False, integer=False),
    Precision(INT8, needs_qat=False, needs_calibration=True, integer=True),
    Precision(INT8_MIXED, needs_qat=False, needs_calibration=True, integer=True),
    Precision(QAT_INT8, needs_qat=True, needs_calibration=True, integer=True),
)
NAMES: tuple[str, ...] = tuple(p.name for p in TABLE)
BY_NAME: dict[str, Precision] = {p.name: p for p in TABLE}
#: What to ship, first choice first (each only if it passes both parity questions).
SHIP_ORDER: tuple[str, ...] = (QAT_INT8, INT8_MIXED, INT8, FP16, FP32)
#: The phone precision assets recommends.
RECOMMENDED = SHIP_ORDER[0]
