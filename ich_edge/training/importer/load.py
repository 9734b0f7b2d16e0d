"""Open a user's Keras model file as a tf_keras model (``ich-edge import``).

* ``.h5`` (tf_keras / Keras 2 HDF5) and a SavedModel folder written by tf_keras load here;
* ``.keras`` written by tf_keras loads here too; one written by Keras 3 (``keras_version``
  3.x in its ``metadata.json``) is opened by Keras 3 in a child process
  (:mod:`keras3_side`), whose architecture and weights are rebuilt in tf_keras
  (:mod:`rebuild`) and checked against Keras 3's own output on a probe input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ich_edge.errors import ModelError
from ich_edge.fileio import sha256_of
from ich_edge.training.keras import keras

#: Largest |rebuilt - original| accepted on the probe input of a Keras 3 model.
REBUILD_TOLERANCE = 1e-5
KERAS3_SIDE = Path(__file__).with_name("keras3_side.py")


def detect_format(path: Path) -> str:
    """``h5``, ``keras2``, ``keras3`` or ``savedmodel``; :class:`ModelError` for anything else."""
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        raise ModelError(f"{path} is a folder without saved_model.pb; pass a .h5, .keras file or a SavedModel folder")
    if not path.is_file():
        raise ModelError(f"{path} does not exist; pass the Keras model file to import")
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if magic == b"\x89HDF\r\n\x1a\n":
        return "h5"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise ModelError(f"{path} is a zip archive but not a Keras model (no config.json inside)")
            meta = json.loads(archive.read("metadata.json")) if "metadata.json" in archive.namelist() else {}
        return "keras3" if str(meta.get("keras_version", "3")).startswith("3") else "keras2"
    raise ModelError(f"{path} is not a Keras model (neither HDF5 .h5, a .keras archive nor a SavedModel folder)")


def _tf_keras_load(path: Path):
    try:
        return keras.models.load_model(path, compile=False)
    except (ValueError, TypeError, KeyError) as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "Unknown layer" in str(err) or "custom" in str(err).lower() or "Could not locate" in str(err):
            raise ModelError(
                f"{path} uses a custom layer whose code is not available ({text}); ich-edge import takes models "
                "made of standard Keras layers: rebuild that part with standard layers, or export a model without it"
            ) from err
        raise ModelError(f"{path} cannot be loaded by tf_keras ({text})") from err
    except OSError as err:
        raise ModelError(f"{path} cannot be read as a Keras model ({err})") from err


def _child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["KERAS_BACKEND"] = "tensorflow"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def keras3_export(path: Path, scratch: Path, window: int) -> tuple[dict, dict, dict]:
    """Run Keras 3 in a child process: ``(architecture, weights, probe)`` of the model file."""
    done = subprocess.run(
        [sys.executable, str(KERAS3_SIDE), "dump", str(path), str(scratch), str(window)],
        env=_child_env(), capture_output=True, text=True,
    )
    if done.returncode != 0:
        lines = [l for l in done.stderr.strip().splitlines() if l.strip()]
        last = lines[-1] if lines else f"exit code {done.returncode}"
        hint = ("a custom layer needs its code registered; ich-edge import takes standard Keras layers"
                if "custom" in last.lower() or "Could not locate" in last else "check that Keras 3 can load it")
        raise ModelError(f"{path} cannot be loaded by Keras 3 ({last}); {hint}")
    architecture = json.loads((scratch / "architecture.json").read_text())
    with np.load(scratch / "weights.npz") as data:
        weights = {k: data[k] for k in data.files}
    with np.load(scratch / "probe.npz") as data:
        probe = {k: data[k] for k in data.files}
    return architecture, weights, probe


def load_keras_model(path: str | Path, window_slices: int | None = None) -> tuple[object, dict]:
    """``(tf_keras model, info)``; info has format, sha256 and (Keras 3) the rebuild check.

    ``window_slices`` sizes the Keras 3 probe input when the window length is None.
    """
    from ich_edge.training.importer.rebuild import rebuild
    from ich_edge.training.importer.safety import check_model_file

    path = Path(path)
    fmt = detect_format(path)
    check_model_file(path, fmt)  # before anything is deserialized: no code from the file runs
    info = {"path": str(path.resolve()), "format": fmt, "sha256": sha256_of(path)}
    if fmt != "keras3":
        return _tf_keras_load(path), info
    with tempfile.TemporaryDirectory(prefix="ich_edge_import_") as scratch:
        architecture, weights, probe = keras3_export(path, Path(scratch), window_slices or 4)
    model = rebuild(architecture, weights)
    diff = float(np.abs(np.asarray(model(probe["x"], training=False)) - probe["y"]).max())
    if not diff <= REBUILD_TOLERANCE:
        raise ModelError(
            f"the tf_keras rebuild of {path} differs from Keras 3 by {diff:.2e} (> {REBUILD_TOLERANCE:g}) on a probe "
            "input; save the model with tf_keras as .h5 instead"
        )
    info.update(keras_version=architecture["keras_version"], rebuild_max_abs_diff=diff)
    return model, info
