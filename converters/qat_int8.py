"""qat-int8: the quantization-aware fine-tuned model (QAT_DIR), integer where int8 keeps parity.

The encoder's ranges come from its fake-quant layers (learned in ``ich-edge qat``), so its
int8 form computes what the QAT model computes. The recurrent head cannot be wrapped by
TFMOT, so it has no fake-quant ranges: the recipe calibrates it like ``int8`` does. Its
int8 form is where the file's error comes from (the per-layer report names
``classify/bilstm`` first), so like ``int8-mixed`` the recipe keeps float only the groups
whose int8 form breaks parity on the training cache (``--keep-float auto``, the default;
:mod:`converters.mixed`), and none when the all-integer file passes or when no float
RUN_DIR is given to judge against. ``--keep-float none`` gives the all-integer file.
"""

from converters import int8
from converters.recipe import Recipe
from ich_edge.precisions import QAT_INT8
from ich_edge.training.parity.gates import CONVERSION_GATES

RECIPE = Recipe(
    name=QAT_INT8,
    summary="integer from the QAT model (trained encoder ranges, calibrated head; float only where int8 breaks parity)",
    configure=int8.configure,
    needs_calibration=True,
    needs_qat=True,
    io_types=("float", "int8"),
    parity=CONVERSION_GATES[QAT_INT8],
    keeps_float=True,
)
