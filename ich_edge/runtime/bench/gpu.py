"""The GPU backends of ``ich-edge bench``: LiteRT's CompiledModel with the GPU accelerator.

Runtime tier. Two ways to use the GPU, each reported as what it is:

* ``gpu`` -- :class:`CompiledStudyModel`: the whole model through
  ``ai_edge_litert.compiled_model.CompiledModel`` with ``HardwareAccelerator.GPU`` alone (no
  CPU fallback), so a number measured there is a GPU number or there is no number.
* ``gpu+cpu`` -- :class:`GpuEncoderStudyModel`: what an app does with an ich-edge model,
  because LiteRT's GPU accelerator cannot compile the fused LSTM of ``classify`` (its state
  lives in variable tensors: "Variable tensors not yet supported"). ``encode`` runs on the
  GPU, one slice per call, and ``classify`` on the CPU (XNNPACK).

When the accelerator cannot be created or cannot take the model, :class:`AcceleratorUnavailable`
carries LiteRT's own error lines (it logs the cause to stderr and raises a bare location
trace, so stderr is captured around the call). The model is then probed one signature at a
time, so the reason says whether the machine has no usable GPU, or the GPU works but a
signature cannot be compiled.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from ich_edge.errors import IchEdgeError
from ich_edge.runtime.tflite_model import ENCODE, TFLiteStudyModel

#: LiteRT log lines that carry the cause of a failure (the rest is registration chatter).
_CAUSE = re.compile(r"(ERROR|Error|error|Failed|failed|Couldn't|cannot|not supported|No adapters)")
_NOISE = re.compile(r"(intel_openvino|libopenvino|npu_registry|compiler_plugin|Source Location Trace|^\s*$)")


class AcceleratorUnavailable(IchEdgeError):
    """The accelerator cannot run this model on this machine (the reason says why)."""

    default_message = "accelerator unavailable"


@contextlib.contextmanager
def captured_stderr():
    """Capture what native code writes to file descriptor 2; yields a list filled with the text."""
    text: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read().decode("utf-8", errors="replace"))


def cause_lines(log: str, limit: int = 4) -> list[str]:
    """The lines of a LiteRT log that say why something failed, without location traces."""
    lines = []
    for line in log.splitlines():
        if _NOISE.search(line):
            continue
        line = re.sub(r"^[EWI]\d{4} [\d:.]+\s+\d+ \S+\] ", "", line.strip().lstrip("└ ").strip())
        line = re.sub(r"^(ERROR|WARNING|INFO): \[[^\]]+\] ", r"\1: ", line)
        if _CAUSE.search(line) and not re.fullmatch(r"ERROR: \[[^\]]+\]", line):
            if line not in lines:
                lines.append(line)
    return lines[:limit]


def _litert():
    try:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import Options
    except ImportError as err:
        raise AcceleratorUnavailable(f"this LiteRT has no CompiledModel GPU API ({err}); it needs ai-edge-litert >= 2.0") from err
    return CompiledModel, HardwareAccelerator, Options


def _compile(CompiledModel, options, path: str):
    with captured_stderr() as log:
        try:
            model = CompiledModel.from_file(path, options=options)
        except Exception as err:  # LiteRT raises RuntimeError with a location trace only
            failure = err
        else:
            failure = None
    if failure is not None:
        causes = cause_lines(log[0]) or [str(failure).splitlines()[0] if str(failure) else type(failure).__name__]
        raise AcceleratorUnavailable("; ".join(causes))
    return model


def _probe_signatures(model_path: str, options, CompiledModel) -> list[str]:
    """One reason per signature compiled alone on the GPU ("ok" where it compiles)."""
    from ich_edge.runtime.coverage import read_model, single_signature_model
    from ich_edge.runtime.flatbuffer import signature_subgraphs

    found = []
    data = Path(model_path).read_bytes()
    for key in signature_subgraphs(read_model(data)):
        try:
            part = single_signature_model(data, key)
        except IchEdgeError as err:
            found.append(f"{key}: not probed ({err})")
            continue
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{key}.tflite"
            path.write_bytes(part)
            try:
                _compile(CompiledModel, options, str(path))
            except AcceleratorUnavailable as err:
                found.append(f"{key}: {err}")
            else:
                found.append(f"{key}: compiles")
    return found


class CompiledStudyModel:
    """``encode``/``classify`` of a two-signature ich-edge model on a LiteRT CompiledModel.

    ``accelerator="gpu"`` (what bench uses) compiles for the GPU alone, with no CPU
    fallback; ``"cpu"`` exists so the same code path can be tested on machines without one.
    """

    def __init__(self, model_path: str | Path, accelerator: str = "gpu", num_threads: int = 2) -> None:
        CompiledModel, HardwareAccelerator, Options = _litert()
        if accelerator == "gpu":
            options = Options(hardware_accelerators=HardwareAccelerator.GPU)
        else:
            from ai_edge_litert.options import CpuOptions

            options = Options(hardware_accelerators=HardwareAccelerator.CPU, cpu_options=CpuOptions(num_threads=num_threads))
        try:
            self.model = _compile(CompiledModel, options, str(model_path))
        except AcceleratorUnavailable as err:
            per_signature = _probe_signatures(str(model_path), options, CompiledModel)
            detail = f" (per signature: {' | '.join(per_signature)})" if per_signature else ""
            raise AcceleratorUnavailable(f"LiteRT CompiledModel ({accelerator}) failed: {err}{detail}") from err
        self.fully_accelerated = bool(self.model.is_fully_accelerated())
        self._buffers: dict = {}

    def _buffers_for(self, signature: str, shape: tuple[int, ...]):
        key = (signature, shape)
        if key not in self._buffers:
            model = self.model
            name = model.get_signature_list()[signature]["inputs"][0]
            current = tuple(int(d) for d in model.get_input_tensor_details(signature)[name]["shape"])
            if current != shape:
                model.resize_input_tensor_by_name(signature, name, list(shape))
            index = model.get_signature_index(signature)
            out_name = model.get_signature_list()[signature]["outputs"][0]
            detail = model.get_output_tensor_details(signature)[out_name]
            self._buffers[key] = (
                index,
                model.create_input_buffers(index),
                model.create_output_buffers(index),
                np.dtype(model.get_input_tensor_details(signature)[name]["dtype"]),
                tuple(int(d) for d in detail["shape"]),
                np.dtype(detail["dtype"]),
            )
        return self._buffers[key]

    def run_batch(self, signature: str, array: np.ndarray) -> np.ndarray:
        """One invocation of ``signature`` on ``array`` (its first axis is the batch)."""
        index, inputs, outputs, in_dtype, out_shape, out_dtype = self._buffers_for(signature, tuple(array.shape))
        inputs[0].write(np.ascontiguousarray(array, dtype=in_dtype))
        self.model.run_by_index(index, inputs, outputs)
        return outputs[0].read(int(np.prod(out_shape)), out_dtype).reshape(out_shape)

    def _run(self, signature: str, array: np.ndarray) -> np.ndarray:
        try:
            return self.run_batch(signature, array)
        except RuntimeError:
            if len(array) == 1:
                raise
            # A signature with a static batch of 1 (e.g. a window at a time): one row per call.
            return np.concatenate([self.run_batch(signature, array[i : i + 1]) for i in range(len(array))])

    def encode(self, images_uint8: np.ndarray) -> np.ndarray:
        # One slice per call: LiteRT 2.3's GPU kernels for this encoder failed to build for a
        # batch of 32 and the failure ended the process (see GpuEncoderStudyModel).
        rows = [self.run_batch(ENCODE, images_uint8[i : i + 1]) for i in range(len(images_uint8))]
        return np.concatenate(rows).astype(np.float32)

    def classify(self, windows: np.ndarray) -> np.ndarray:
        return self._run("classify", windows).astype(np.float32)


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
