"""The GPU backends of ``ich-edge bench``: LiteRT's CompiledModel with the GPU accelerator.

Runtime tier. Two ways to use the GPU, each reported as what it is:

* ``gpu`` -- :class:`~ich_edge.runtime.compiled.CompiledStudyModel`: the whole model through
  ``ai_edge_litert.compiled_model.CompiledModel`` with ``HardwareAccelerator.GPU`` alone (no
  CPU fallback), so a number measured there is a GPU number or there is no number.
* ``gpu+cpu`` -- :class:`GpuEncoderStudyModel`: what an app does with an ich-edge model,
  because LiteRT's GPU accelerator cannot compile the fused LSTM of ``classify`` (its state
  lives in variable tensors: "Variable tensors not yet supported"). ``encode`` runs on the
  GPU, one slice per call, and ``classify`` on the CPU (XNNPACK).

When the accelerator cannot be created or cannot take the model,
:class:`~ich_edge.runtime.compiled.AcceleratorUnavailable` carries LiteRT's own error lines
(it logs the cause to stderr and raises a bare location trace, so stderr is captured around
the call). The model is then probed one signature at a time, so the reason says whether the
machine has no usable GPU, or the GPU works but a signature cannot be compiled. Both live in
:mod:`ich_edge.runtime.compiled`, which ``predict --runtime compiled`` uses too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ich_edge.runtime.compiled import CompiledStudyModel
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

    def __init__(self, path: str | Path, num_threads: int = 2, accelerator: str = "gpu") -> None:
        super().__init__(path, num_threads=num_threads, use_xnnpack=True, encode_batch=1)
        from ich_edge.runtime.coverage import single_signature_model

        # The compiled model reads its file; the folder lives as long as this object.
        self._folder = tempfile.TemporaryDirectory(prefix="ich-edge-encode-")
        encoder_path = Path(self._folder.name) / f"{ENCODE}.tflite"
        encoder_path.write_bytes(single_signature_model(self.path.read_bytes(), ENCODE))
        self.accelerated = CompiledStudyModel(encoder_path, accelerator, num_threads)

    def _encode_batch(self, batch: np.ndarray) -> np.ndarray:
        return self.accelerated.run_batch(ENCODE, batch)
