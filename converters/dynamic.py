"""dynamic: int8 weights, float activations (dynamic-range quantization, no calibration)."""

from converters.recipe import Recipe, builtin_ops
from ich_edge.precisions import DYNAMIC
from ich_edge.training.parity.gates import CONVERSION_GATES


def configure(converter, options) -> None:
    from ich_edge.training.keras import tf

    builtin_ops(converter, integer_only=False)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]


RECIPE = Recipe(
    name=DYNAMIC,
    summary="int8 weights, float activations (dynamic range)",
    configure=configure,
    needs_calibration=False,
    needs_qat=False,
    parity=CONVERSION_GATES[DYNAMIC],
)
