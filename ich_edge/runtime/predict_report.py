"""What ``ich-edge predict`` prints: the JSON objects, the text report and the problem lines.

Runtime tier. The verdict rule and the problems come from :mod:`ich_edge.runtime.predict`.
"""

from __future__ import annotations

from pathlib import Path

from ich_edge.runtime.predict import UNREADABLE, PathPrediction, positive_labels, triage, triage_line


def _round(value: float) -> float:
    return round(float(value), 6)


def to_json(result: PathPrediction) -> list[dict]:
    """One JSON-ready object per predicted series (the ``--json`` schema)."""
    labels = result.points.labels
    objects = []
    for prediction in result.series:
        if prediction.unreadable:
            objects.append(_unreadable_json(prediction, result))
            continue
        study = prediction.study_probabilities
        objects.append(
            {
                "index": prediction.index,
                "series_uid": prediction.series_uid,
                "study_uid": prediction.study_uid,
                "num_slices": prediction.num_slices,
                "verdict": triage(prediction, result.points).verdict,
                "triage": triage_line(prediction, result.points),
                "study": {label: _round(study[i]) for i, label in enumerate(labels)},
                "positive": positive_labels(prediction, result.points),
                "thresholds": {
                    "slice": result.points.slice_thresholds,
                    "study": result.points.study_thresholds,
                    "source": result.points.source,
                },
                "slices": [
                    {
                        "id": slice_id,
                        "position": k + 1,
                        "probabilities": {
                            label: _round(prediction.slice_probabilities[k, i]) for i, label in enumerate(labels)
                        },
                    }
                    for k, slice_id in enumerate(prediction.slice_ids)
                ],
                "model": {"path": result.model_path, "sha256": result.sha256, "precision": result.precision},
                "timing_ms": {key: round(value, 3) for key, value in prediction.timing_ms.items()},
                "problems": list(prediction.problems),
                "coverage": prediction.coverage.to_dict() if prediction.coverage is not None else None,
                "unreadable": [],
            }
        )
    return objects


def _unreadable_json(prediction, result: PathPrediction) -> dict:
    """The object of an UNREADABLE series: the same keys, no probabilities (``unreadable`` says why)."""
    return {
        "index": prediction.index,
        "series_uid": prediction.series_uid,
        "study_uid": prediction.study_uid,
        "num_slices": prediction.num_slices,
        "verdict": UNREADABLE,
        "triage": triage_line(prediction, result.points),
        "study": None,
        "positive": None,
        "thresholds": None,
        "slices": [],
        "model": {"path": result.model_path, "sha256": result.sha256, "precision": result.precision},
        "timing_ms": None,
        "problems": list(prediction.problems),
        "coverage": None,
        "unreadable": list(prediction.unreadable),
    }


def format_text(result: PathPrediction) -> str:
    """The human report: per series a header, the triage line, then the study probabilities."""
    labels = result.points.labels
    width = max(len(label) for label in labels)
    lines = []
    total = len(result.series)
    for prediction in result.series:
        lines.append(
            f"series {prediction.index}/{total}  {prediction.series_uid}  ({prediction.num_slices} slices, "
            f"bottom to top)"
        )
        lines.append(triage_line(prediction, result.points))
        if prediction.unreadable:
            lines += [f"  problem: {problem}" for problem in prediction.problems] + [""]
            continue
        study = prediction.study_probabilities
        positive = positive_labels(prediction, result.points)
        lines.append(f"  {'label':<{width}}  study p  threshold")
        for i, label in enumerate(labels):
            mark = "  *" if positive[label] else ""
            lines.append(f"  {label:<{width}}  {study[i]:7.3f}  {result.points.study_thresholds[label]:9.3f}{mark}")
        timing = prediction.timing_ms
        lines.append(
            f"  time: read {timing['read']:.0f} ms, preprocess {timing['preprocess']:.0f} ms, "
            f"inference {timing['inference']:.0f} ms"
        )
        for problem in prediction.problems:
            lines.append(f"  problem: {problem}")
        lines.append("")
    lines.append(
        f"model {Path(result.model_path).name} ({result.precision}, sha256 {result.sha256[:12]}); "
        f"thresholds: {result.points.source}; * = at or above the study threshold. "
        "A triage aid, not a diagnosis."
    )
    return "\n".join(lines)


def series_problem_lines(result: PathPrediction, max_problems: int = 5) -> list[str]:
    """One line per series that has problems, for stderr: its index, UID, verdict and the
    first ``max_problems`` problems (all of them are in the JSON and the text report)."""
    total = len(result.series)
    lines = []
    for p in result.series:
        if not p.problems:
            continue
        shown = " | ".join(p.problems[:max_problems])
        more = f" | ... and {len(p.problems) - max_problems} more" if len(p.problems) > max_problems else ""
        lines.append(
            f"series {p.index}/{total} {p.series_uid}: {triage(p, result.points).verdict}; "
            f"{len(p.problems)} problem{'s' if len(p.problems) != 1 else ''}: {shown}{more}"
        )
    return lines
