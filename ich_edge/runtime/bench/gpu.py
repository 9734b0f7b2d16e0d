"""The GPU backends of ``ich-edge bench``: LiteRT's CompiledModel with the GPU accelerator.

Runtime tier. Two ways to use the GPU, each reported as what it is:

* ``gpu`` -- :class:`~ich_edge.runtime.litert_compiled.CompiledStudyModel`: the whole model through
  ``ai_edge_litert.compiled_model.CompiledModel`` with ``HardwareAccelerator.GPU`` alone (no
  CPU fallback), so a number measured there is a GPU number or there is no number.
* ``gpu+cpu`` -- :class:`GpuEncoderStudyModel`: ``encode`` on the GPU, one slice per call,
  and ``classify`` on the CPU (XNNPACK), as an app does that keeps the small recurrent head
  on the CPU.

When the accelerator cannot be created or cannot take the model,
:class:`~ich_edge.runtime.litert_compiled.AcceleratorUnavailable` carries LiteRT's own error lines
(it logs the cause to stderr and raises a bare location trace, so stderr is captured around
the call). The model is then probed one signature at a time, so the reason says whether the
machine has no usable GPU, or the GPU works but a signature cannot be compiled. Both live in
:mod:`ich_edge.runtime.litert_compiled`, which ``predict --runtime compiled`` uses too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ich_edge.runtime.litert_compiled import CompiledStudyModel
from ich_edge.runtime.model_file import ModelFile
from ich_edge.runtime.tflite_model import ENCODE, TFLiteStudyModel


class GpuEncoderStudyModel(TFLiteStudyModel):
    """:class:`TFLiteStudyModel` whose ``encode`` runs on a LiteRT CompiledModel (the GPU).

    ``classify``, the windows and the stitching stay on the interpreter (XNNPACK,
    ``num_threads``), so only where ``encode`` runs changes. Slices go to the GPU one per
    call: LiteRT 2.3's WebGPU kernels failed to build this encoder for a batch of 32 (ml_drift
    "Unable to parse bc coord for BATCH axis", on an H100), and the failure ended the process.
    ``accelerator="cpu"`` runs the same path on LiteRT's CPU accelerator, for tests on
    machines without a GPU.
    """

    def __init__(self, model: ModelFile | str | Path, num_threads: int = 2, accelerator: str = "gpu") -> None:
        super().__init__(model, num_threads=num_threads, use_xnnpack=True, encode_batch=1)
        from ich_edge.runtime.coverage import single_signature_model

        # The encoder alone, cut from the bytes ModelFile read (the file is not read again).
        self.accelerated = CompiledStudyModel(single_signature_model(self.file.data, ENCODE), accelerator, num_threads)

    def _encode_batch(self, batch: np.ndarray) -> np.ndarray:
        return self.accelerated.run_batch(ENCODE, batch)
