"""int8-mixed: full integer except the layers whose int8 form breaks parity, which stay float.

Calibrated like ``int8`` on the cache's windows; then :mod:`converters.mixed` ranks the
layers by what quantizing them costs (tensor error, study decisions on the training cache's
studies) and keeps float the fewest groups, worst first, that let the file pass both parity
questions there (``--keep-float auto``, the default), or the groups named by
``--keep-float LAYER,...``. Builtin ops only: float layers run on the float kernels, with a
DEQUANTIZE/QUANTIZE pair at each border, and store their weights as int8
(:mod:`converters.weight_storage`).
"""

from converters import int8
from converters.recipe import Recipe
from ich_edge.precisions import INT8_MIXED
from ich_edge.training.parity.gates import CONVERSION_GATES

NAME = INT8_MIXED

RECIPE = Recipe(
    name=NAME,
    summary="int8 with the layers that break parity kept in float (search on the training cache's studies)",
    configure=int8.configure,  # the calibration; convert quantizes selectively (converters.mixed)
    needs_calibration=True,
    needs_qat=False,
    io_types=("float", "int8"),
    parity=CONVERSION_GATES[NAME],
    keeps_float=True,
)
