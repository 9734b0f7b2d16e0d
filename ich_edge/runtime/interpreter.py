"""The one place that imports a TFLite interpreter.

``ai_edge_litert`` (LiteRT, the maintained runtime) first; ``tflite_runtime`` as a fallback
for older ARM boards that still run numpy < 2 and cannot install LiteRT.
"""

from __future__ import annotations

import importlib
from pathlib import Path

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


def make_interpreter(model: str | Path | bytes, num_threads: int = 2, use_xnnpack: bool = True, **kwargs):
    """An ``Interpreter`` for ``model`` (a path, or the file's bytes), its tensors allocated.

    Bytes are handed to LiteRT as ``model_content`` (the interpreter keeps a reference), so
    a file read once in Python is not read again by LiteRT.

    ``use_xnnpack=False`` selects the builtin reference kernels without default delegates
    (``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``), the baseline for benchmarks.
    Allocating here applies the XNNPACK delegate inside :func:`ich_edge.quiet.native_output_silenced`,
    so LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." stays off the
    terminal (``ich-edge --debug`` shows it).
    """
    module = interpreter_module()
    if not use_xnnpack:
        kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if isinstance(model, (bytes, bytearray, memoryview)):
        kwargs["model_content"] = bytes(model)
    else:
        kwargs["model_path"] = str(model)
    with native_output_silenced():
        interpreter = module.Interpreter(num_threads=num_threads, **kwargs)
        interpreter.allocate_tensors()
    return interpreter
