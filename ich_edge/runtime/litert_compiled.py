"""LiteRT's CompiledModel with one accelerator: what ``predict --runtime compiled`` and bench's GPU backends share.

Runtime tier, below both :mod:`ich_edge.runtime.compiled` (the study model on
CompiledModel) and :mod:`ich_edge.runtime.bench` (the ``gpu`` and ``gpu+cpu`` backends):
it imports neither. :class:`CompiledStudyModel` runs the ``encode``/``classify``
signatures of a model given as bytes (read once, by
:class:`~ich_edge.runtime.model_file.ModelFile`) or as a path.

**Only the accelerator asked for.** LiteRT's default environment loads every accelerator
library beside it (the WebGPU accelerator, and NPU compiler plugins) whatever the model is
compiled for. For ``accelerator="cpu"`` the environment is made with library paths that
hold no accelerator library (:func:`make_environment`), so it registers the CPU
accelerator alone. LiteRT 2.3 still makes one internal environment of its own in the
process on the first compile, which loads the GPU library by name; its destructor's
"DestroyAccelerator ... GPU WebGPU" line is printed while the process exits, which is why
the first compile also sends file descriptor 2 to the null device at exit
(:func:`ich_edge.quiet.silence_teardown`, off with ``--debug``).

When the accelerator cannot be created or cannot take the model,
:class:`AcceleratorUnavailable` carries LiteRT's own error lines (it logs the cause to
stderr and raises a bare location trace, so stderr is captured around the call), and the
model is probed one signature at a time, so the reason says whether the machine has no
usable accelerator or a signature cannot be compiled.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from ich_edge.errors import IchEdgeError
from ich_edge.quiet import silence_teardown
from ich_edge.runtime.model_check import CLASSIFY, ENCODE
ACCELERATORS = ("cpu", "gpu")

#: LiteRT log lines that carry the cause of a failure (the rest is registration chatter).
_CAUSE = re.compile(r"(ERROR|Error|error|Failed|failed|Couldn't|cannot|not supported|No adapters)")
_NOISE = re.compile(r"(intel_openvino|libopenvino|npu_registry|compiler_plugin|Source Location Trace|^\s*$)")
#: A folder that holds no LiteRT library: the CPU-only environment's library paths.
_NO_ACCELERATOR_LIBRARIES = str(Path(__file__).resolve().parent)


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


def import_litert():
    """``(CompiledModel, HardwareAccelerator, Options)`` of LiteRT; the first call imports them.

    Raises
    ------
    AcceleratorUnavailable
        When this LiteRT has no CompiledModel API (ai-edge-litert < 2.0).
    """
    try:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import Options
    except ImportError as err:
        raise AcceleratorUnavailable(f"this LiteRT has no CompiledModel API ({err}); it needs ai-edge-litert >= 2.0") from err
    return CompiledModel, HardwareAccelerator, Options


def make_environment(accelerator: str):
    """The LiteRT environment for ``accelerator``: CPU-only for ``"cpu"``, LiteRT's default
    (every accelerator library it finds) for ``"gpu"``; None where this LiteRT has no
    Environment API (it then makes its default one)."""
    if accelerator != "cpu":
        return None
    try:
        from ai_edge_litert.environment import Environment, EnvironmentOptions
    except ImportError:
        return None
    none = _NO_ACCELERATOR_LIBRARIES
    return Environment.create(
        options=EnvironmentOptions(runtime_path=none, compiler_plugin_path=none, dispatch_library_path=none)
    )


def _compile(CompiledModel, options, model: str | bytes, environment=None):
    """A CompiledModel of ``model`` (a path or the file's bytes); :class:`AcceleratorUnavailable` with LiteRT's cause."""
    with captured_stderr() as log:
        try:
            if isinstance(model, bytes):
                compiled = CompiledModel.from_buffer(model, options=options, environment=environment)
            else:
                compiled = CompiledModel.from_file(str(model), options=options, environment=environment)
        except Exception as err:  # LiteRT raises RuntimeError with a location trace only
            failure = err
        else:
            failure = None
    if failure is not None:
        causes = cause_lines(log[0]) or [str(failure).splitlines()[0] if str(failure) else type(failure).__name__]
        raise AcceleratorUnavailable("; ".join(causes))
    return compiled


def _probe_signatures(data: bytes, options, CompiledModel, environment=None) -> list[str]:
    """One reason per signature of the model ``data`` compiled alone ("compiles" where it does)."""
    from ich_edge.runtime.coverage import read_model, single_signature_model
    from ich_edge.runtime.flatbuffer import signature_subgraphs

    found = []
    for key in signature_subgraphs(read_model(data)):
        try:
            part = single_signature_model(data, key)
        except IchEdgeError as err:
            found.append(f"{key}: not probed ({err})")
            continue
        try:
            _compile(CompiledModel, options, part, environment)
        except AcceleratorUnavailable as err:
            found.append(f"{key}: {err}")
        else:
            found.append(f"{key}: compiles")
    return found


_teardown_silenced = False


def _silence_teardown_at_exit() -> None:
    """Once per process: fd 2 goes to the null device at exit, where LiteRT's internal
    environment prints its "DestroyAccelerator" lines (unless ``--debug``)."""
    global _teardown_silenced
    if not _teardown_silenced:
        _teardown_silenced = True
        atexit.register(silence_teardown)


class CompiledStudyModel:
    """``encode``/``classify`` of a two-signature ich-edge model on a LiteRT CompiledModel.

    ``accelerator="gpu"`` (what bench uses) compiles for the GPU alone, with no CPU
    fallback; ``"cpu"`` compiles for the CPU accelerator in an environment that has no other
    (:func:`make_environment`).
    """

    def __init__(self, model: str | Path | bytes, accelerator: str = "gpu", num_threads: int = 2) -> None:
        # Bytes (the file read once by ModelFile) go to LiteRT as a buffer, kept alive here.
        self._model_data = model if isinstance(model, bytes) else Path(model).read_bytes()
        CompiledModel, HardwareAccelerator, Options = import_litert()
        if accelerator == "gpu":
            options = Options(hardware_accelerators=HardwareAccelerator.GPU)
        else:
            from ai_edge_litert.options import CpuOptions

            options = Options(hardware_accelerators=HardwareAccelerator.CPU, cpu_options=CpuOptions(num_threads=num_threads))
        _silence_teardown_at_exit()
        self.environment = make_environment(accelerator)
        try:
            self.model = _compile(CompiledModel, options, self._model_data, self.environment)
        except AcceleratorUnavailable as err:
            per_signature = _probe_signatures(self._model_data, options, CompiledModel, self.environment)
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
        # batch of 32 and the failure ended the process (see bench.gpu.GpuEncoderStudyModel).
        rows = [self.run_batch(ENCODE, images_uint8[i : i + 1]) for i in range(len(images_uint8))]
        return np.concatenate(rows).astype(np.float32)

    def classify(self, windows: np.ndarray) -> np.ndarray:
        return self._run(CLASSIFY, windows).astype(np.float32)
