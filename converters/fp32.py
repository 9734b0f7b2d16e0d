"""fp32: the float model as it is; the reference every other precision is compared to."""

from converters.recipe import Recipe, builtin_ops
from ich_edge.precisions import FP32
from ich_edge.training.parity.gates import CONVERSION_GATES


def configure(converter, options) -> None:
    builtin_ops(converter, integer_only=False)


RECIPE = Recipe(
    name=FP32,
    summary="float32 weights and activations (reference)",
    configure=configure,
    needs_calibration=False,
    needs_qat=False,
    parity=CONVERSION_GATES[FP32],
)
