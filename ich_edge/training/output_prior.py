"""Where the output layer starts: at the label prior, so training does not spend its first epochs there.

A sigmoid output with bias 0 starts at probability 0.5 for every label, while 2-15% of slices
bleed. The first epochs of a run then go to pulling every output down to the prior, and on
some seeds the model sits there for half the run before it finds the lesions (seed 2 of the
demo learned only at epoch 16 of 24; see docs/experiments.md). Starting the bias at the
prior (the best constant model under the loss) removes that phase.

The best constant answer under a cross-entropy whose positive term is weighted ``w``, for a
label with prevalence ``p``, is ``p* = w p / (w p + 1 - p)``; the bias is ``logit(p*)``.
With study labels the loss sees the pooled study probability: under "max" pooling equal
slice outputs pool to themselves (slice bias = study prior); under "noisy-or" over ``T``
slices the slice probability is ``1 - (1 - p*)^(1/T)``.
"""

from __future__ import annotations

import numpy as np

from ich_edge import LABELS

#: The output layer's starting bias: "prior" (logit of the weighted label prior of the
#: training series) or "zero" (Keras's default, every label at probability 0.5).
OUTPUT_BIASES = ("prior", "zero")

#: Name of the sigmoid output layer inside the head (``model.build_head``).
OUTPUT_LAYER = "probabilities"

#: Priors are kept this far from 0 and 1, so a label without a positive (or without a
#: negative) in the training set gives a finite bias.
PRIOR_FLOOR = 1e-4


def label_prevalence(series: list, label_mode: str) -> np.ndarray:
    """Share of positive labels per label over ``series`` (unknown labels, -1, left out).

    ``label_mode`` "slice" counts slices, "study" counts one study label per series.
    """
    if label_mode == "slice":
        rows = [np.asarray(item.slice_labels, np.float64) for item in series]
    else:
        rows = [np.asarray(item.study_labels, np.float64)[None, :] for item in series]
    labels = np.concatenate(rows, axis=0) if rows else np.zeros((0, len(LABELS)))
    known = labels >= 0
    positives = np.where(known, labels, 0.0).sum(axis=0)
    counts = known.sum(axis=0)
    return np.divide(positives, counts, out=np.full(len(LABELS), 0.5), where=counts > 0)


def prior_probability(prevalence: np.ndarray, positive_weight: float, label_mode: str = "slice",
                      pooling: str = "max", window_slices: int = 1) -> np.ndarray:
    """Per-slice output probability of the best constant model under the training loss."""
    p = np.clip(np.asarray(prevalence, np.float64), PRIOR_FLOOR, 1.0 - PRIOR_FLOOR)
    weighted = positive_weight * p / (positive_weight * p + 1.0 - p)
    if label_mode == "study" and pooling == "noisy-or":
        weighted = 1.0 - (1.0 - weighted) ** (1.0 / max(1, window_slices))
    return np.clip(weighted, PRIOR_FLOOR, 1.0 - PRIOR_FLOOR)


def prior_bias(series: list, label_mode: str, positive_weight: float, pooling: str = "max",
               window_slices: int = 1) -> np.ndarray:
    """The output bias (float32 logits, one per label) at the weighted label prior of ``series``."""
    p = prior_probability(label_prevalence(series, label_mode), positive_weight, label_mode, pooling, window_slices)
    return np.log(p / (1.0 - p)).astype(np.float32)


def set_output_bias(head, bias: np.ndarray) -> None:
    """Set the bias of ``head``'s output layer (its kernel stays as initialised)."""
    layer = head.get_layer(OUTPUT_LAYER)
    kernel, old = layer.get_weights()
    if old.shape != np.shape(bias):
        raise ValueError(f"output bias shape {np.shape(bias)} does not match the layer's {old.shape}")
    layer.set_weights([kernel, np.asarray(bias, old.dtype)])
