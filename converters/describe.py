"""The description embedded in every converted file (see :mod:`ich_edge.runtime.description`).

What an app or a reviewer needs to run the file right and to know where it came from:
signatures, preprocessing, the sequence rule, thresholds, training data and source run.
The file leaves the machine (apps, app stores, other hospitals): paths in it are reduced to their
last name (:func:`ich_edge.fileio.folder_names`), and the source run is identified by the sha256
of its model file, which `ich-edge parity` matches against the folders it is given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from converters.recipe import ConvertOptions, Recipe
from ich_edge import LABELS, __version__, fileio
from ich_edge.runtime.description import FORMAT
from ich_edge.runtime.tflite_model import CLASSIFY, ENCODE
from ich_edge.training.keras import tf
from ich_edge.training.model import MODEL_VERSION
from ich_edge.training.run_dir import model_sha256

VALUE_SCALING = (
    "uint8 window image / 255 -> [0, 1] float input; int8/uint8 inputs take the quantized value per the "
    "input's scale/zero_point"
)
SLICE_ORDER = "by ImagePositionPatient projected on the slice normal, bottom of the head to the top"
HU_RULE = "stored * RescaleSlope + RescaleIntercept"
ORDER_OF_OPS = ["HU", "area resize to input_size_px", "windows (one per channel, clipped to [0, 1])", "uint8 = round(x * 255)"]


def signature_details(tflite_bytes: bytes) -> dict:
    """``{signature: {"inputs": [...], "outputs": [...]}}`` with shape, dtype and quantization."""
    from ich_edge.runtime.interpreter import interpreter_module

    interpreter = interpreter_module().Interpreter(model_content=tflite_bytes)

    def describe(name: str, detail: dict) -> dict:
        scale, zero_point = detail["quantization"]
        return {
            "name": name,
            "shape": [int(d) for d in detail["shape_signature"]],
            "dtype": np.dtype(detail["dtype"]).name,
            "quantization": {"scale": float(scale), "zero_point": int(zero_point)},
        }

    out = {}
    for key in (ENCODE, CLASSIFY):
        runner = interpreter.get_signature_runner(key)
        out[key] = {
            "inputs": [describe(n, d) for n, d in runner.get_input_details().items()],
            "outputs": [describe(n, d) for n, d in runner.get_output_details().items()],
        }
    return out


def describe_model(run, recipe: Recipe, options: ConvertOptions, tflite_bytes: bytes, summary: dict, calibration,
                   split=None) -> dict:
    """The description embedded in the file (see :mod:`ich_edge.runtime.description`); ``split``: where
    ``encode`` ends (:func:`ich_edge.training.projection.deployed_split`, the run's ``auto`` split when None)."""
    from ich_edge.training.projection import deployed_split

    config = run.config
    split = split or deployed_split(run)
    run_dir = getattr(run, "run_dir", None)  # the RunDir it was loaded from: report.json read once there
    report = run_dir.report if run_dir is not None else fileio.read_optional_json(run.path / "report.json")
    data = dict(config.get("data", {}))
    cache = data.get("cache")
    return {
        "format": FORMAT,
        "model_version": config.get("model_version", MODEL_VERSION),
        "precision": recipe.name,
        "precision_summary": recipe.summary,
        "io": options.io,
        "labels": list(config.get("labels", LABELS)),
        "signatures": signature_details(tflite_bytes),
        "preprocessing": {
            **run.preprocess_config.to_dict(),
            "value_scaling": VALUE_SCALING,
            "slice_order": SLICE_ORDER,
            "hu": HU_RULE,
            "order_of_ops": ORDER_OF_OPS,
        },
        "sequence": {
            **run.sequence_config.to_dict(),
            "padding": "a study shorter than window_slices is padded at the end with blank (all-zero) slices; "
            "their features are encode(blank image) and their outputs are dropped",
            "features": split.to_dict(),
            "state": "stateless: classify has no variable tensors; every invocation is one window from the zero "
            "state, so windows can run in any order and on any runtime",
        },
        "thresholds": run.thresholds,
        "model_input": config.get("model_input"),  # imported models: scale/channels applied inside encode
        "imported_from": fileio.folder_names(
            {k: (config.get("import") or {}).get(k) for k in ("path", "format", "sha256")}) if config.get("import") else None,
        "training_data": fileio.folder_names({
            **data,
            "synthetic": is_synthetic(cache),
            "validation_study_auc": ((report or {}).get("validation", {}).get("model", {}).get("study", {}).get("auc")),
        }),
        "source_run": fileio.folder_names({
            "path": str(Path(run.path).resolve()),
            "model_sha256": model_sha256(run.path),
            "quantized": bool(config.get("quantized", False)),
            "model": run.model_config.to_dict(),
            "qat": {k: (config.get("qat") or {}).get(k) for k in ("epochs", "learning_rate", "source_run")}
            if config.get("quantized") else None,
        }),
        "calibration": None if calibration is None else {
            "windows": calibration.num_windows,
            "slices": calibration.num_slices,
            "drawn_from": "training studies of the run (split.json) in the --data cache",
        },
        "created_by": f"ich-edge {__version__} (tensorflow {tf.__version__})",
        "quantized_ops": {sig: {op: {k: v for k, v in e.items() if k != "weight_dtypes"} for op, e in info["ops"].items()}
                          for sig, info in summary.items()},
    }




def is_synthetic(cache) -> bool | None:
    """Whether the training cache was prepared from ``ich-edge synth`` output; None if unknown.

    ``prepare`` records its DICOM folder in CACHE/problems/*.json; ``synth --out DIR``
    writes DIR/synth_config.json beside DIR/dicom, the folder ``prepare`` reads (a cache
    prepared from DIR itself counts too).
    """
    folders = set()
    for report in sorted(Path(cache).glob("problems/*.json")) if cache else ():
        folder = (fileio.read_optional_json(report) or {}).get("dicom_dir")
        if folder and Path(folder).is_dir():
            folders.add(Path(folder).resolve())
    if not folders:
        return None
    return all(any((d / "synth_config.json").is_file() for d in (folder, folder.parent)) for folder in folders)
