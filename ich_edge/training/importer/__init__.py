"""``ich-edge import``: bring a Keras CNN-LSTM trained elsewhere into a RUN_DIR.

The RUN_DIR has the layout ``ich-edge train`` writes (:mod:`ich_edge.training.run`), so qat,
convert, parity, bench, predict and assets take it like a trained one:

* ``model.keras``: the user's layers and weights in the canonical layout (see :mod:`split`);
* ``config.json``: model (backbone ``imported``), sequence, preprocess, ``model_input``
  (input scale and channels) and ``import`` (original path, format, sha256, label order,
  checks) sections;
* ``thresholds.json``: 0.5 for every label (no validation data is known at import;
  ``ich-edge qat`` chooses validated thresholds on a cache).

Modules: :mod:`config` (the options, :class:`ImportConfig`), :mod:`load` (formats),
:mod:`keras3_side` and :mod:`rebuild` (Keras 3 files), :mod:`split` (encoder/head),
:mod:`reference` (the original file as parity reference), :mod:`quantize` (QAT of an
imported encoder).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ich_edge import __version__
from ich_edge.errors import ConfigError
from ich_edge.fileio import refuse_existing, replace_dir, write_json_atomic
from ich_edge.sequence import SequenceConfig
from ich_edge.training.importer.config import (
    BACKGROUND,
    CHANNEL_SETS,
    DEFAULT_SLICE_WINDOW,
    DEFAULT_THRESHOLD,
    ImportConfig,
)
from ich_edge.transforms import ModelInput, PreprocessConfig

__all__ = ["BACKGROUND", "CHANNEL_SETS", "DEFAULT_SLICE_WINDOW", "DEFAULT_THRESHOLD", "ImportConfig", "import_model"]


def import_model(model_path, out, config: ImportConfig = ImportConfig(), data=None, log=print) -> dict:
    """Import ``model_path`` into RUN_DIR ``out``; returns the run's config dict.

    ``data`` (optional) is the prepared cache the model will be used with: its preprocessing
    is taken and the model's input size checked against it. Nothing is written on error.
    """
    from ich_edge.training import run as run_lib
    from ich_edge.training.importer.load import load_keras_model
    from ich_edge.training.importer.split import output_labels
    from ich_edge.training.model import build_cnn_lstm

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder")
    # --force replaces only an import's RUN_DIR holding nothing but what import writes
    written = (run_lib.MODEL_FILE, run_lib.CONFIG_FILE, run_lib.THRESHOLDS_FILE)
    refuse_existing(out, config.force, "import --out", written=written)
    model, info = load_keras_model(model_path, config.window_slices)
    shape = tuple(model.input_shape)
    preprocess, cache_series = _preprocess_of(data, shape)
    model_input = ModelInput(config.input_scale, config.channels)
    window = config.window_slices if len(shape) == 5 or config.window_slices else DEFAULT_SLICE_WINDOW
    split = _split(model, model_path, info, model_input, preprocess, window, config, cache_series)
    labels = list(output_labels(split.file_labels))
    run_config = _run_config(info, split, labels, preprocess, model_input, data)
    whole = build_cnn_lstm(split.encoder, split.head, split.window_slices)
    _write_run(out, whole, run_config, labels, written)
    depth = f"{split.recurrent_layers}-layer " if split.recurrent_layers > 1 else ""
    log(f"imported {info['path']} ({info['format']}, {split.kind} model, {depth}{split.rnn} head, labels {', '.join(labels)}) into {out}: "
        f"{split.input_size_px} px, window {split.window_slices}, {split.feature_dim} features per slice; "
        f"max |imported - original| {split.check_max_abs_diff:.1e} on {len(split.verification)} verification windows "
        "(padded, all-air, input extremes, random)")
    return run_config


def _preprocess_of(data, shape: tuple) -> tuple[PreprocessConfig, tuple]:
    """The cache's preprocessing and series when ``data`` is given, else the model's input size at defaults."""
    if data is None:
        return PreprocessConfig(input_size_px=int(shape[-2]) if len(shape) in (4, 5) and shape[-2] else 128), ()
    from ich_edge.ingest.cache import Cache

    cache = Cache.open(data)
    return cache.preprocess, cache.series()


def _split(model, model_path, info: dict, model_input: ModelInput, preprocess: PreprocessConfig, window: int,
           config: ImportConfig, cache_series):
    """The user's model split into encoder and head, checked against the original (Keras 3 itself for a Keras 3 file)."""
    from ich_edge.training.importer.split import split_user_model

    original = None
    if info["format"] == "keras3":  # the verification's reference is Keras 3 itself, not the rebuild
        from ich_edge.training.importer.reference import Keras3Worker

        original = Keras3Worker(Path(model_path))
    try:
        return split_user_model(model, model_input, preprocess, window, config.labels, config.softmax_ok, original,
                                cache_series)
    finally:
        if original is not None:
            original.close()


def _run_config(info: dict, split, labels: list[str], preprocess: PreprocessConfig, model_input: ModelInput,
                data) -> dict:
    """The RUN_DIR's config.json: the sections ``ich-edge train`` writes plus an ``import`` section."""
    from ich_edge.training.model import ModelConfig

    stride = split.window_slices if split.kind == "slice" else SequenceConfig.half_overlap(split.window_slices).stride_slices
    model_config = ModelConfig(backbone="imported", input_size_px=split.input_size_px, feature_dim=split.feature_dim,
                               rnn=split.rnn)
    return {
        "ich_edge_version": __version__,
        "quantized": False,
        "labels": labels,
        "model": model_config.to_dict(),
        "sequence": SequenceConfig(split.window_slices, stride).to_dict(),
        "preprocess": preprocess.to_dict(),
        "model_input": model_input.to_dict(),
        "data": {"cache": str(Path(data).resolve()) if data is not None else None},
        "import": {
            **info,
            "kind": split.kind,
            "per_window_output": split.per_window_output,
            "output_activation": split.activation,
            "file_labels": list(split.file_labels),
            "encoder_layers": [l.name for l in split.encoder.layers[1:]],
            "head_layers": [l.name for l in split.head.layers[1:]],
            "split_max_abs_diff": split.check_max_abs_diff,
            "verification": {"windows": list(split.verification), "max_abs_diff": split.check_max_abs_diff,
                             "reference": "Keras 3 (child process)" if info["format"] == "keras3" else "the loaded file"},
            "head": {"rnn": split.rnn, "recurrent_layers": split.recurrent_layers,
                     "bidirectional": split.bidirectional, "mask": False,
                     "output": "per-window (repeated to every slice)" if split.per_window_output else "per-slice",
                     "background_dropped": BACKGROUND in split.file_labels},
            "thresholds": f"{DEFAULT_THRESHOLD} for every label (not validated; `ich-edge qat` chooses them on data)",
        },
    }


def _write_run(out: Path, whole, run_config: dict, labels: list[str], written: tuple[str, ...]) -> None:
    """Stage model, config and flat thresholds beside ``out``, check the staged RUN_DIR loads, then swap it in."""
    from ich_edge.training import run as run_lib

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as scratch:
        staged = Path(scratch) / "run"
        staged.mkdir()
        whole.save(staged / run_lib.MODEL_FILE)
        write_json_atomic(staged / run_lib.CONFIG_FILE, run_config)
        flat = {label: DEFAULT_THRESHOLD for label in labels}
        write_json_atomic(staged / run_lib.THRESHOLDS_FILE, {"specificity": None, "slice": flat, "study": dict(flat)})
        run_lib.load_run(staged)  # the RUN_DIR loads as a trained one does
        replace_dir(staged, out, verb="import", written=written)  # an existing (forced) import is set aside, then deleted
