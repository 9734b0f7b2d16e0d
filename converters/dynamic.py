"""dynamic: int8 weights, float activations (dynamic-range quantization, no calibration)."""

from converters.recipe import Recipe, builtin_ops


def configure(converter, options) -> None:
    from ich_edge.training.keras import tf

    builtin_ops(converter, integer_only=False)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]


RECIPE = Recipe(
    name="dynamic",
    summary="int8 weights, float activations (dynamic range)",
    configure=configure,
    needs_calibration=False,
    needs_qat=False,
    parity={"max_auc_drop": 0.005, "min_agreement": 0.99},
)
