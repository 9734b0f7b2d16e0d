"""The one place that imports a TFLite interpreter.

``ai_edge_litert`` (LiteRT, the maintained runtime) first; ``tflite_runtime`` as a fallback
for older ARM boards that still run numpy < 2 and cannot install LiteRT.
"""

from __future__ import annotations

import importlib

from ich_edge.errors import MissingDependencyError
from ich_edge.quiet import native_output_silenced

_CANDIDATES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
)


def interpreter_module():
    """Return the interpreter module (with ``Interpreter`` and ``OpResolverType``)."""
    for module_name, _ in _CANDIDATES:
        try:
            return importlib.import_module(module_name)
        except ImportError:
            continue
    raise MissingDependencyError(
        "no TFLite runtime found: install it with `pip install ai-edge-litert` "
        "(or `pip install tflite-runtime` on boards with numpy < 2)"
    )


def runtime_name() -> str:
    """Name and version of the interpreter package in use, e.g. ``ai-edge-litert 2.3.0``."""
    from importlib import metadata

    module = interpreter_module()
    for module_name, dist in _CANDIDATES:
        if module.__name__ == module_name:
            try:
                return f"{dist} {metadata.version(dist)}"
            except metadata.PackageNotFoundError:
                return dist
    return module.__name__


def make_interpreter(model_path: str, num_threads: int = 2, use_xnnpack: bool = True, **kwargs):
    """An ``Interpreter`` for ``model_path``, its tensors allocated.

    ``use_xnnpack=False`` selects the builtin reference kernels without default delegates
    (``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``), the baseline for benchmarks.
    Allocating here applies the XNNPACK delegate inside :func:`ich_edge.quiet.native_output_silenced`,
    so LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." stays off the
    terminal (``ich-edge --debug`` shows it).
    """
    module = interpreter_module()
    if not use_xnnpack:
        kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with native_output_silenced():
        interpreter = module.Interpreter(model_path=str(model_path), num_threads=num_threads, **kwargs)
        interpreter.allocate_tensors()
    return interpreter
