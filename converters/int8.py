"""int8: full-integer post-training quantization, calibrated on slices and windows of the cache.

Both signatures are quantized, the recurrent head included (unrolled and stateless: int8
FULLY_CONNECTED and elementwise ops), so no float weights are left in the file. ``convert``
quantizes the one calibrated graph of the run (:func:`converters.layers.quantize`), the
graph int8-mixed starts from, so both share one per-layer report; ``configure`` is the
same conversion as one converter call.
"""

from converters.recipe import Recipe, builtin_ops, integer_io
from ich_edge.precisions import INT8
from ich_edge.training.parity.gates import CONVERSION_GATES


def configure(converter, options) -> None:
    from ich_edge.training.keras import tf

    builtin_ops(converter, integer_only=True)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = options.representative_dataset
    integer_io(converter, options)


RECIPE = Recipe(
    name=INT8,
    summary="full integer (int8 weights and activations), post-training calibration",
    configure=configure,
    needs_calibration=True,
    needs_qat=False,
    io_types=("float", "int8"),
    parity=CONVERSION_GATES[INT8],
)
