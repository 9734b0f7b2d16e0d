"""The one module that chooses Keras: tf_keras (Keras 2) on TensorFlow 2.21.

tensorflow-model-optimization 0.8 refuses Keras 3. (The recurrent head is not converted as
tf_keras' fused, stateful TFLite LSTM any more: ``convert`` rebuilds it unrolled and
stateless, :mod:`ich_edge.training.stateless`.) ``TF_USE_LEGACY_KERAS=1`` must be set before
TensorFlow is first imported so that ``tf.keras`` (used inside TFMOT) is tf_keras too; this
module does that, so every model-building module imports ``tf`` and ``keras`` from here.

It also turns on TensorFlow's oneDNN kernels (``TF_ENABLE_ONEDNN_OPTS=1``, unless the
environment already sets it). TensorFlow enables them by itself only on CPUs with AVX-512 VNNI
or newer; on an AVX2-only CPU it falls back to its Eigen kernels, and a training step of the
demo model takes 3.8x longer (``benchmarks/train_step.py``). Results stay deterministic
under ``enable_op_determinism`` (same seed: the same loss and weights, bit for bit).
"""

from __future__ import annotations

import os
import sys
import warnings

from ich_edge.errors import MissingDependencyError, ModelError
from ich_edge.quiet import debug_enabled, native_output_silenced, quiet_environment

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise ModelError(
        "TensorFlow was imported before ich_edge.training.keras could select tf_keras; "
        "import ich_edge.training modules first or set TF_USE_LEGACY_KERAS=1 in the environment"
    )
os.environ["TF_USE_LEGACY_KERAS"] = "1"
#: oneDNN kernels on every x86 CPU, not only AVX-512 VNNI ones (see the module docstring).
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
os.environ.setdefault(ONEDNN_ENV, "1")
quiet_environment()  # TF_CPP_MIN_LOG_LEVEL before the import; `ich-edge --debug` keeps TF's lines

try:
    # TensorFlow's absl/CUDA/oneDNN start-up lines are written to fd 2 by C++ at import.
    with native_output_silenced():
        import tensorflow as tf
        import tf_keras as keras
except ImportError as err:  # pragma: no cover - depends on the install
    raise MissingDependencyError(
        f"training needs TensorFlow and tf_keras ({err.name} is missing): pip install 'ich-edge[train]'"
    ) from err

if not debug_enabled():
    # TF's own calibrator (int8 conversion) still uses tf.lite.Interpreter and warns about it.
    warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated", category=UserWarning)

__all__ = ["tf", "keras"]


def quantization_api():
    """``tensorflow_model_optimization.quantization.keras``, imported on first use."""
    try:
        with native_output_silenced():
            import tensorflow_model_optimization as tfmot
    except ImportError as err:  # pragma: no cover - depends on the install
        raise MissingDependencyError(
            "quantization-aware training needs tensorflow-model-optimization: pip install 'ich-edge[train]'"
        ) from err
    return tfmot.quantization.keras
