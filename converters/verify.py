"""Verify an fp32 ``.tflite`` against the Keras run BEFORE it is written (``ich-edge convert``).

The file's ``encode`` and ``classify`` run the windows real studies contain
(:func:`ich_edge.training.importer.verify.verification_windows`: blank padding at either
end, a one-slice study padded to the window, all-air, the input extremes, a phantom) and
their probabilities must equal the Keras model's within
:data:`~ich_edge.training.importer.verify.TOLERANCE`; otherwise a :class:`ConversionError`
names the window and the part (``encode`` or ``classify``) where they first disagree, and
nothing is written. Padding follows the app's rule: padding slots of a window hold the
encoder's features of a blank slice (:func:`ich_edge.sequence.feature_windows`), which is
what running the image windows through ``encode`` gives.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ich_edge.errors import ConversionError


def _signatures(tflite_bytes: bytes, scratch: Path):
    from ich_edge.runtime.interpreter import make_interpreter
    from ich_edge.runtime.tflite_model import CLASSIFY, ENCODE

    path = scratch / "candidate.tflite"
    path.write_bytes(tflite_bytes)
    interpreter = make_interpreter(path)
    return interpreter.get_signature_runner(ENCODE), interpreter.get_signature_runner(CLASSIFY)


def verify_fp32(tflite_bytes: bytes, run, split=None) -> float:
    """Largest |file - Keras| probability on the verification windows; raises past the tolerance.

    ``split``: where the file's ``encode`` ends (:func:`ich_edge.training.projection.deployed_split`;
    None: the run's ``auto`` split); the Keras side computes the same vector."""
    from converters.graph import FEATURES, IMAGE, PROBABILITIES
    from ich_edge.training.importer.verify import TOLERANCE, first_disagreement, verification_windows, worst
    from ich_edge.training.projection import deployed_encoder, deployed_split

    window = run.sequence_config.window_slices
    size = int(run.encoder.input_shape[1])
    unit, cases = verification_windows(size, window)
    with tempfile.TemporaryDirectory(prefix="ich_edge_verify_") as scratch:
        encode, classify = _signatures(tflite_bytes, Path(scratch))
        raw = [np.asarray(run.encoder(w, training=False), np.float32) for w in unit]
        keras_probs = np.concatenate([np.asarray(run.head(f[None], training=False), np.float32) for f in raw])
        encode_keras = deployed_encoder(run.encoder, split or deployed_split(run))
        keras_features = np.stack([np.asarray(encode_keras(w), np.float32) for w in unit])
        file_features = np.stack([encode(**{IMAGE: w})[FEATURES] for w in unit])
        file_probs = np.concatenate([classify(**{FEATURES: f[None]})[PROBABILITIES] for f in file_features])
        if keras_probs.ndim == 2:  # a head without RepeatVector: one vector per window
            keras_probs = np.repeat(keras_probs[:, None], window, axis=1)
        diff = file_probs - keras_probs
        largest = float(np.abs(diff).max())
        if largest <= TOLERANCE:
            return largest
        on_keras_features = np.concatenate([classify(**{FEATURES: f[None]})[PROBABILITIES] for f in keras_features])
    where = first_disagreement([("encode (the slice encoder's features)", file_features, keras_features),
                                ("classify (the stateless recurrent head)", on_keras_features, keras_probs)])
    raise ConversionError(
        f"the fp32 file differs from the Keras model by {largest:.2e} (> {TOLERANCE:g}) on the "
        f"'{worst(diff, cases)}' window; first disagreement: {where}; nothing was written (please report this)"
    )
