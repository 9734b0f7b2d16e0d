"""int8: full-integer post-training quantization, calibrated on slices and windows of the cache.

Both signatures are quantized, the recurrent head included: with calibration data the
converter turns the fused UNIDIRECTIONAL_SEQUENCE_LSTM into its integer kernel (int8
weights, int16 cell state), so no float weights are left in the file.
"""

from converters.recipe import Recipe, builtin_ops, integer_io
from ich_edge.training.parity_gates import CONVERSION_GATES


def configure(converter, options) -> None:
    from ich_edge.training.keras import tf

    builtin_ops(converter, integer_only=True)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = options.representative_dataset
    integer_io(converter, options)


RECIPE = Recipe(
    name="int8",
    summary="full integer (int8 weights and activations), post-training calibration",
    configure=configure,
    needs_calibration=True,
    needs_qat=False,
    io_types=("float", "int8"),
    parity=CONVERSION_GATES["int8"],
)
