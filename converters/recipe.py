"""What a precision recipe is: a name, a converter function and the facts the CLI needs.

A recipe's ``configure(converter, options)`` sets the options of a
``tf.lite.TFLiteConverter`` built from the deployable SavedModel (two signatures,
``encode`` and ``classify``); everything else (graph export, calibration data, checks,
description, atomic writing) is shared in :mod:`converters.convert`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from ich_edge.errors import ConfigError

IO_TYPES = ("float", "int8")


@dataclass(frozen=True)
class ConvertOptions:
    """Per-conversion choices passed to a recipe.

    Attributes
    ----------
    io : "float" (float32 tensors in and out, quantize/dequantize inside the graph) or
        "int8" (8-bit integer tensors: the image input is uint8 with scale 1/255 and zero
        point 0, so an app feeds the raw window pixels; features and probabilities are uint8
        with the scale/zero point recorded in the description).
    representative_dataset : callable returning an iterator of ``(signature, {input: array})``
        calibration samples; required by recipes with ``needs_calibration``.
    """

    io: str = "float"
    representative_dataset: Callable[[], Iterator] | None = None

    def __post_init__(self) -> None:
        if self.io not in IO_TYPES:
            raise ConfigError(f"io must be one of {IO_TYPES}, got {self.io!r}")


@dataclass(frozen=True)
class Recipe:
    """One TFLite precision.

    Attributes
    ----------
    name : the ``--precision`` value; the file is ``cnn_lstm_<name>.tflite``.
    summary : one line for ``--help`` and the description.
    configure : ``(converter, ConvertOptions) -> None``, sets the converter's options.
    needs_calibration : True when a representative dataset from the cache is required.
    needs_qat : True for recipes that convert a QAT_DIR, False for a float RUN_DIR.
    io_types : I/O tensor types the recipe can produce (a subset of :data:`IO_TYPES`).
    parity : gates for ``ich-edge parity`` against the Keras model: ``max_abs_diff`` (largest
        |p_tflite - p_keras|) for fp32, ``max_auc_drop`` and ``min_agreement`` (study level,
        every label) for reduced precisions; the row of
        :data:`ich_edge.training.parity.gates.CONVERSION_GATES` (the training tier owns the
        table, so that it never imports ``converters``).
    keeps_float : an integer recipe that keeps float only the layer groups where int8 breaks
        parity (``--keep-float auto``: searched on the training cache, :mod:`converters.mixed`;
        ``--keep-float LAYER,...``: named; ``--keep-float none``: all integer).
    """

    name: str
    summary: str
    configure: Callable
    needs_calibration: bool
    needs_qat: bool
    io_types: tuple[str, ...] = ("float",)
    parity: dict = field(default_factory=dict)
    keeps_float: bool = False

    def __post_init__(self) -> None:
        if not set(self.io_types) <= set(IO_TYPES):
            raise ConfigError(f"recipe {self.name}: io_types must be within {IO_TYPES}")

    @property
    def file_name(self) -> str:
        return f"cnn_lstm_{self.name}.tflite"

    def check_options(self, options: ConvertOptions) -> None:
        """Refuse options this recipe cannot honour (never change them silently)."""
        if options.io not in self.io_types:
            raise ConfigError(
                f"precision {self.name} has float weights and activations, so it has no {options.io} I/O; "
                f"use --io float, or one of the integer precisions (int8, qat-int8) for --io int8"
            )
        if self.needs_calibration and options.representative_dataset is None:
            raise ConfigError(f"precision {self.name} needs calibration data: pass --data CACHE")


def builtin_ops(converter, integer_only: bool) -> None:
    """Allow only builtin TFLite ops (no Flex / SELECT_TF_OPS), int8 kernels if ``integer_only``."""
    from ich_edge.training.keras import tf

    ops = tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if integer_only else tf.lite.OpsSet.TFLITE_BUILTINS
    converter.target_spec.supported_ops = [ops]


def integer_io(converter, options: ConvertOptions) -> None:
    """uint8 input and output tensors for ``--io int8`` (float32 otherwise)."""
    from ich_edge.training.keras import tf

    if options.io == "int8":
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
