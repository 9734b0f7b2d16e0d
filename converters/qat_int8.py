"""qat-int8: the quantization-aware fine-tuned model (QAT_DIR), fully integer.

The encoder's ranges come from its fake-quant layers (learned in ``ich-edge qat``). The
recurrent head cannot be wrapped by TFMOT, so it has no fake-quant ranges: without a
representative dataset the converter would leave it float32 (a bigger file than PTQ int8).
The recipe therefore also calibrates, which quantizes the head like ``int8`` does while
the encoder keeps its trained ranges.
"""

from converters import int8
from converters.recipe import Recipe
from ich_edge.training.parity_gates import CONVERSION_GATES

RECIPE = Recipe(
    name="qat-int8",
    summary="full integer from the QAT model (trained encoder ranges, calibrated head)",
    configure=int8.configure,
    needs_calibration=True,
    needs_qat=True,
    io_types=("float", "int8"),
    parity=CONVERSION_GATES["qat-int8"],
)
