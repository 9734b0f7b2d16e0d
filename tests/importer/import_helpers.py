"""Tiny user models (the paper's layout at 32 px) and a 32 px cache for the import tests."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from ich_edge import LABELS
from ich_edge.ingest.cache import Cache, CachedSeries
from ich_edge.transforms import PreprocessConfig

SIZE_PX, WINDOW = 32, 4
ROOT = Path(__file__).resolve().parents[2]


def paper_like(window=WINDOW, return_sequences=True, outputs=6, activation="sigmoid", channels=3, seed=0):
    """The paper's Sequential CNN + LSTM at toy size, random weights (tf_keras)."""
    sys.path.insert(0, str(ROOT / "examples"))
    from paper_model import build_paper_model
    from ich_edge.training.keras import keras

    keras.utils.set_random_seed(seed)
    model = build_paper_model(SIZE_PX, window, filters=(4, 8), lstm_units=8, hidden_units=8,
                              return_sequences=return_sequences)
    if outputs != 6 or activation != "sigmoid" or channels != 3:
        layers = model.layers[:-1]
        model = keras.Sequential([keras.Input((window, SIZE_PX, SIZE_PX, channels))]
                                 + [l.__class__.from_config(l.get_config()) for l in layers]
                                 + [keras.layers.Dense(outputs, activation=activation, name="output")])
    return model


def write_cache(root: Path, size_px: int = SIZE_PX, studies: int = 6) -> Path:
    cache = Cache.create(root, PreprocessConfig(input_size_px=size_px))
    rng = np.random.default_rng(0)
    for study in range(studies):
        n = 5 + study % 3
        images = rng.integers(0, 255, (n, size_px, size_px, 3), dtype=np.uint8)
        labels = np.zeros((n, len(LABELS)), np.int8)
        if study % 2:
            labels[1:3, [study % 5, 5]] = 1
        cache.write(CachedSeries(f"1.2.9.{study}.1", f"1.2.9.{study}", images, labels, labels.max(axis=0),
                                 tuple(f"ID_{study:04x}{k:03x}" for k in range(n))))
    return root


def write_keras3(path: Path, body: str) -> Path:
    """Save a Keras 3 model built by ``body`` (code defining ``model``) to ``path`` in a child process."""
    script = "import os\nos.environ.pop('TF_USE_LEGACY_KERAS', None)\nimport keras, numpy as np\n" + textwrap.dedent(body)
    script += f"\nmodel.save({str(path)!r})\n"
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_USE_LEGACY_KERAS"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, capture_output=True)
    return path
