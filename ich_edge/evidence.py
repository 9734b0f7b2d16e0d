"""The default minimum evidence of a parity verdict, and how a report's minimums fall short of it.

``ich-edge parity`` lets a user lower the evidence a verdict needs (``--min-studies``,
``--min-positive-studies``, ``--gated-labels``); a PASS judged on 8 studies with one
positive is a much weaker statement than one on the defaults. The defaults live here (no
numpy, no TensorFlow) so that parity (training tier), which records them in its report, and
``assets`` (runtime tier), which refuses to ship a verdict judged below them unless told to
(``--allow-weak-evidence``) and states them in manifest.json and README.md, read one rule.
Why these numbers: :mod:`ich_edge.training.parity.gates`.
"""

from __future__ import annotations

from ich_edge import LABELS

#: Held-out studies any verdict needs.
DEFAULT_MIN_STUDIES = 20
#: Positive (and as many negative) studies a gated label needs.
DEFAULT_MIN_POSITIVE_STUDIES = 5


def default_minimums(labels=LABELS) -> dict:
    """The default rule for a model with ``labels``: every one of them gated."""
    return {"min_studies": DEFAULT_MIN_STUDIES, "min_positive_studies": DEFAULT_MIN_POSITIVE_STUDIES,
            "gated_labels": list(labels)}


def below_defaults(evidence: dict | None, labels=LABELS) -> list[str]:
    """How a report's ``evidence`` section (``min_studies``, ``min_positive_studies``,
    ``gated_labels``) falls below :func:`default_minimums` for a model with ``labels``: one
    phrase per shortfall, ``[]`` when it meets them. A report that records no minimums
    falls short by definition.
    """
    if not isinstance(evidence, dict) or not all(k in evidence for k in ("min_studies", "min_positive_studies", "gated_labels")):
        return ["the parity report records no evidence minimums"]
    short = []
    studies, positives = evidence["min_studies"], evidence["min_positive_studies"]
    if not isinstance(studies, int) or studies < DEFAULT_MIN_STUDIES:
        short.append(f"min studies {studies} < {DEFAULT_MIN_STUDIES}")
    if not isinstance(positives, int) or positives < DEFAULT_MIN_POSITIVE_STUDIES:
        short.append(f"min positive studies {positives} < {DEFAULT_MIN_POSITIVE_STUDIES}")
    gated = evidence["gated_labels"] if isinstance(evidence["gated_labels"], list) else []
    ungated = [label for label in labels if label not in gated]
    if ungated:
        short.append(f"labels not gated: {', '.join(ungated)}")
    return short
