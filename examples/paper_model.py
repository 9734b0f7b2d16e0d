"""The seed paper's CNN-LSTM, built in tf_keras, trained briefly on `ich-edge synth` data, saved as .h5.

Architecture (as the paper describes it): per slice, TimeDistributed Conv2D + ReLU twice, a
2x2 max pooling and Flatten; across the slices of a window, an LSTM; then a fully connected
hidden layer and a Dense(6, sigmoid) output per slice, in ich-edge's label order.

This file stands for "a model trained elsewhere": it uses ich-edge only to make data
(synth, prepare) and to feed windows; the model itself is plain Keras and is then brought
in with ``ich-edge import``. Usage::

    python examples/paper_model.py --work /tmp/paper          # data + training, a few minutes
    ich-edge import --model /tmp/paper/paper_model.h5 --out /tmp/paper/run --data /tmp/paper/cache
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

PAPER_SIZE_PX, PAPER_WINDOW = 64, 8


def build_paper_model(size_px: int = PAPER_SIZE_PX, window_slices: int = PAPER_WINDOW, filters=(16, 32),
                      lstm_units: int = 32, hidden_units: int = 64, return_sequences: bool = True):
    """The paper's Sequential CNN + LSTM: ``(B, T, S, S, 3)`` -> ``(B, T, 6)`` (or ``(B, 6)``)."""
    from ich_edge.training.keras import keras

    td = keras.layers.TimeDistributed
    return keras.Sequential([
        keras.Input((window_slices, size_px, size_px, 3), name="window"),
        td(keras.layers.Conv2D(filters[0], 3, activation="relu"), name="td_conv1"),
        td(keras.layers.Conv2D(filters[1], 3, activation="relu"), name="td_conv2"),
        td(keras.layers.MaxPooling2D(2), name="td_pool"),
        td(keras.layers.Flatten(), name="td_flatten"),
        keras.layers.LSTM(lstm_units, return_sequences=return_sequences, name="lstm"),
        keras.layers.Dense(hidden_units, activation="relu", name="hidden"),
        keras.layers.Dense(6, activation="sigmoid", name="output"),
    ], name="paper_cnn_lstm")


def make_data(work: Path, studies: int, size_px: int, seed: int = 0) -> Path:
    """``ich-edge synth`` (128 px phantoms, 12-20 slices) and ``prepare`` at ``size_px``; returns the cache."""
    from ich_edge.cli import main

    cache = work / "cache"
    if not (cache / "preprocess.json").exists():
        args = ["synth", "--out", str(work / "synth"), "--studies", str(studies), "--seed", str(seed),
                "--matrix-px", "128", "--slices", "12-20", "--force"]
        if main(args) != 0:
            raise SystemExit("synth failed")
        if main(["prepare", "--dicom", str(work / "synth" / "dicom"), "--labels-csv", str(work / "synth" / "labels.csv"),
                 "--out", str(cache), "--input-size-px", str(size_px)]) != 0:
            raise SystemExit("prepare failed")
    return cache


def train_paper_model(cache: Path, out_h5: Path, epochs: int = 4, batch_size: int = 8, seed: int = 0,
                      size_px: int = PAPER_SIZE_PX, window_slices: int = PAPER_WINDOW) -> dict:
    """Train the paper model on every study of ``cache`` and save it as ``out_h5`` (tf_keras HDF5)."""
    from ich_edge.ingest.cache import Cache
    from ich_edge.training import data as data_lib
    from ich_edge.training.keras import keras
    from ich_edge.training.train import rsna_weighted_bce

    keras.utils.set_random_seed(seed)
    series = Cache.open(cache).series()
    augment = data_lib.AugmentConfig()
    dataset, steps = data_lib.train_dataset(series, window_slices, batch_size, seed, augment)
    model = build_paper_model(size_px, window_slices)
    # the pipeline yields (uint8 window, augmentation draw): train behind ich-edge's AugmentLayer
    trainer = data_lib.training_model(model, window_slices, size_px, augment)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss=rsna_weighted_bce)
    t0 = time.monotonic()
    history = trainer.fit(dataset, epochs=epochs, steps_per_epoch=steps, verbose=2)
    out_h5.parent.mkdir(parents=True, exist_ok=True)
    model.save(out_h5)
    return {"loss": [float(v) for v in history.history["loss"]], "seconds": time.monotonic() - t0,
            "params": int(model.count_params()), "path": str(out_h5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for synth data, cache and the .h5")
    parser.add_argument("--studies", type=int, default=60)
    parser.add_argument("--size", type=int, default=PAPER_SIZE_PX)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    cache = make_data(args.work, args.studies, args.size)
    result = train_paper_model(cache, args.work / "paper_model.h5", args.epochs, size_px=args.size)
    print(f"saved {result['path']}: {result['params']} parameters, loss {result['loss']}, {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
