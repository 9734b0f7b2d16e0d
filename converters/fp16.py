"""fp16: float16 weights (half the file), dequantized to float32 at load or by a GPU delegate."""

from converters.recipe import Recipe, builtin_ops
from ich_edge.precisions import FP16
from ich_edge.training.parity.gates import CONVERSION_GATES


def configure(converter, options) -> None:
    from ich_edge.training.keras import tf

    builtin_ops(converter, integer_only=False)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


RECIPE = Recipe(
    name=FP16,
    summary="float16 weights, float32 activations",
    configure=configure,
    needs_calibration=False,
    needs_qat=False,
    parity=CONVERSION_GATES[FP16],
)
