"""Accuracy parity of TFLite models (``ich-edge parity``), a stage of the training tier.

The steps, each in its own module:

* :mod:`~ich_edge.training.parity.run`: what is compared with what (the Keras runs, the
  held-out series, every ``.tflite``) and :func:`run_parity`, which answers the two questions;
* :mod:`~ich_edge.training.parity.compare`: one level's statistics (slice or study);
* :mod:`~ich_edge.training.parity.stats`: the paired bootstrap by study;
* :mod:`~ich_edge.training.parity.gates`: the gates of each question, the minimum evidence, the verdict;
* :mod:`~ich_edge.training.parity.report`: report.json, report.md, the ROC figure and the summary.

Nothing here imports TensorFlow on import; the Keras runs load when :func:`run_parity` runs.
"""

from ich_edge.training.parity.compare import Level, compare_level
from ich_edge.training.parity.gates import (
    CONVERSION, CONVERSION_GATES, DEPLOYMENT, DEPLOYMENT_GATES, EvidenceRule, ParityGates, assess_evidence, check_gates,
    combine, gates_for, recipe_gates,
)
from ich_edge.training.parity.report import format_markdown, format_summary, write_outputs
from ich_edge.training.parity.run import (
    DEPLOYMENT_OVERRIDES, ParityConfig, check_same_labels, load_reference, platform_predictions, resolve_references,
    run_parity, select_series,
)
from ich_edge.training.parity.stats import CI_LEVEL, bootstrap_level, study_weights, weighted_auc

__all__ = [
    "CI_LEVEL", "CONVERSION", "CONVERSION_GATES", "DEPLOYMENT", "DEPLOYMENT_GATES", "DEPLOYMENT_OVERRIDES", "EvidenceRule",
    "Level", "ParityConfig", "ParityGates", "assess_evidence", "bootstrap_level", "check_gates", "check_same_labels",
    "combine", "compare_level", "format_markdown", "format_summary", "gates_for", "load_reference",
    "platform_predictions", "recipe_gates", "resolve_references", "run_parity", "select_series", "study_weights",
    "weighted_auc", "write_outputs",
]
