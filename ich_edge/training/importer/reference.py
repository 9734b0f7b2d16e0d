"""The user's ORIGINAL model file as the parity reference of an imported run.

``ich-edge parity`` compares every ``.tflite`` with a Keras reference; for a run written by
``ich-edge import`` that reference is the file the user brought (checked against the
sha256 recorded at import), not the rebuilt copy in the RUN_DIR. The original runs on
whole windows through the same input map (:class:`ich_edge.transforms.ModelInput`),
label order and per-window repeat as the deployed file; the "encoder" handed to
:func:`ich_edge.training.evaluate.predict_series` passes the slices through unchanged.
A Keras 3 ``.keras`` file runs in a Keras 3 child process (:class:`Keras3Worker`).
"""

from __future__ import annotations

import atexit
import io
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from ich_edge.errors import ModelError
from ich_edge.transforms import ModelInput

WINDOWS_PER_CALL = 16


class Keras3Worker:
    """A Keras 3 child process that runs the model on arrays sent over a pipe."""

    def __init__(self, path: Path) -> None:
        from ich_edge.training.importer.load import KERAS3_SIDE, _child_env

        self.process = subprocess.Popen([sys.executable, str(KERAS3_SIDE), "serve", str(path)], env=_child_env(),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.process.stdout.readline()
        while line and line != b"READY\n":  # anything Keras prints before it is ready
            line = self.process.stdout.readline()
        if not line:
            raise ModelError(f"Keras 3 could not load {path} in a child process; run `ich-edge import` again to see why")
        atexit.register(self.close)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(x, np.float32))
        self.process.stdin.write(struct.pack("<Q", len(buffer.getvalue())) + buffer.getvalue())
        self.process.stdin.flush()
        header = self.process.stdout.read(8)
        if len(header) != 8:
            raise ModelError("the Keras 3 child process ended while running the original model")
        (size,) = struct.unpack("<Q", header)
        return np.load(io.BytesIO(self.process.stdout.read(size)))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


class _PassSlices:
    """'Encoder' of the original model: the [0, 1] slices themselves, flattened to vectors."""

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(batch, np.float32).reshape(len(batch), -1)


class _OriginalHead:
    """Windows of passed-through slices ``(w, T, S*S*3)`` -> the original's ``(w, T, 6)``."""

    def __init__(self, model, run) -> None:
        self.model, self.info = model, run.config["import"]
        self.size = run.preprocess_config.input_size_px
        self.window = run.sequence_config.window_slices
        self.model_input = ModelInput.from_dict(run.config.get("model_input"))
        self.preprocess = run.preprocess_config

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        from ich_edge.training.importer.split import run_original, to_canonical

        unit = np.asarray(windows, np.float32).reshape(len(windows), self.window, self.size, self.size, 3)
        out = [to_canonical(run_original(self.model, self.info["kind"], self.model_input, self.preprocess,
                                         unit[i : i + WINDOWS_PER_CALL]), self.window, self.info["file_labels"])
               for i in range(0, len(unit), WINDOWS_PER_CALL)]
        return np.concatenate(out, axis=0)


def is_imported_run(config: dict) -> bool:
    return bool(config.get("import")) and not config.get("quantized")


def load_original_reference(run_dir):
    """The imported RUN_DIR as a :class:`Run` whose encoder/head run the ORIGINAL file."""
    from ich_edge.fileio import sha256_of
    from ich_edge.training.importer.load import _tf_keras_load
    from ich_edge.training.run import load_run

    run = load_run(run_dir)
    info = run.config["import"]
    path = Path(info["path"])
    if not path.exists():
        raise ModelError(f"the original model {path} recorded at import is gone; parity compares against it: put it back")
    if sha256_of(path) != info["sha256"]:
        raise ModelError(f"{path} changed since it was imported (sha256 differs); import it again into a new RUN_DIR")
    if info["format"] == "keras3":
        model = Keras3Worker(path)
    else:
        keras_model = _tf_keras_load(path)
        model = lambda x: keras_model(x, training=False)  # noqa: E731
    return replace(run, encoder=_PassSlices(), head=_OriginalHead(model, run))
