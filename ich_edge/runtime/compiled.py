"""The model on LiteRT's CompiledModel API (``predict --runtime compiled``, ``bench --backend compiled|gpu``).

Runtime tier. CompiledModel is LiteRT's current API on Android and the path to its GPU
and NPU accelerators; it refuses files with variable tensors, which is why ``classify`` is
converted stateless. :class:`CompiledRuntimeStudyModel` keeps everything of
:class:`~ich_edge.runtime.tflite_model.TFLiteStudyModel` that is not an invocation (input
scaling, windows, padding, stitching, the study rule) and sends both signatures to a
:class:`CompiledStudyModel`, so the two runtimes differ only in the kernels that run.

The interpreter of the parent class is still opened: it reads the signatures' tensor
details (names, shapes, quantization) that the CompiledModel Python API does not expose.

The CompiledModel plumbing (environment, compile, :class:`AcceleratorUnavailable`,
:class:`CompiledStudyModel`) lives one level down, in :mod:`ich_edge.runtime.litert_compiled`,
shared with bench's GPU backends; its names are re-exported here.

**Where the start-up time goes** (``benchmarks/compiled_init.py``): importing
``ai_edge_litert.compiled_model`` imports ``ml_dtypes``, whose ufunc registration is most
of a second of CPU with numpy 2.4 (once per process; reported apart as ``import_ms``); the
Python check of the file (:func:`~ich_edge.runtime.model_check.check_model`, once); the
interpreter; then LiteRT's environment and compile, a few milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ich_edge.errors import ConfigError
from ich_edge.quiet import native_output_silenced
from ich_edge.runtime.litert_compiled import (  # noqa: F401 - re-exported for predict, bench and the tests
    ACCELERATORS,
    AcceleratorUnavailable,
    CompiledStudyModel,
    captured_stderr,
    cause_lines,
    import_litert,
    make_environment,
)
from ich_edge.runtime.model_file import ModelFile
from ich_edge.runtime.tflite_model import CLASSIFY, DEFAULT_ENCODE_BATCH, ENCODE, TFLiteStudyModel


class CompiledRuntimeStudyModel(TFLiteStudyModel):
    """An ich-edge ``.tflite`` whose ``encode`` and ``classify`` run on a LiteRT CompiledModel.

    Parameters
    ----------
    model : a :class:`~ich_edge.runtime.model_file.ModelFile`, or the path of a ``.tflite``
        written by ``ich-edge convert`` (opened here). Both the interpreter and the
        CompiledModel are built from its bytes, read once.
    num_threads : CPU accelerator threads.
    accelerator : ``"cpu"`` (CompiledModel's CPU accelerator, XNNPACK inside, and no other
        accelerator created) or ``"gpu"`` (the GPU accelerator alone, no CPU fallback:
        slices go one per call, as LiteRT 2.3 failed to build the encoder's GPU kernels for
        a batch of 32).

    Raises
    ------
    AcceleratorUnavailable
        The accelerator cannot run the model here, with LiteRT's reason.
    """

    def __init__(self, model: ModelFile | str | Path, num_threads: int = 2, accelerator: str = "cpu") -> None:
        if accelerator not in ACCELERATORS:
            raise ConfigError(f"accelerator must be one of {ACCELERATORS}, got {accelerator!r}")
        batch = DEFAULT_ENCODE_BATCH if accelerator == "cpu" else 1
        super().__init__(model, num_threads=num_threads, use_xnnpack=True, encode_batch=batch)
        self.accelerator = accelerator
        # LiteRT prints "INFO: [accelerator_registry.cc...]" lines when the model compiles and when
        # its environment is made, on the first run: both happen quietly (--debug shows them).
        with native_output_silenced():
            self.compiled = CompiledStudyModel(self.file.data, accelerator, num_threads)
        self._ran = False

    @property
    def fully_accelerated(self) -> bool:
        return self.compiled.fully_accelerated

    def __del__(self) -> None:
        # LiteRT prints "INFO: [accelerator_registry.cc:43] DestroyAccelerator ..." as the model goes.
        compiled = self.__dict__.pop("compiled", None)
        if compiled is not None:
            with native_output_silenced():
                del compiled

    def _run(self, signature: str, inputs: np.ndarray) -> np.ndarray:
        if self._ran:
            return self.compiled.run_batch(signature, inputs)
        with native_output_silenced():
            outputs = self.compiled.run_batch(signature, inputs)
        self._ran = True
        return outputs

    def _encode_batch(self, batch: np.ndarray) -> np.ndarray:
        return self._run(ENCODE, batch)

    def _classify_window(self, window: np.ndarray) -> np.ndarray:
        return self._run(CLASSIFY, window)
