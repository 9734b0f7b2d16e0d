"""The per-layer quantization report and ``int8-mixed``: float only where int8 breaks parity.

For an integer file, :func:`layer_report` says which layers cost accuracy, in two measures:

* **tensor error** (:func:`converters.layers.tensor_errors`): RMSE / quantization step of
  every op output against the float calibrated graph on calibration samples;
* **decision impact** (needs the run's training cache): for each layer group, the file
  with *only that group* in float is judged against the validated float model on every
  study of the training cache, training and validation (the two parity questions,
  :func:`ich_edge.training.parity.run_parity` with ``studies="all"``); ``restored`` is how
  many study decisions (over all labels) that group alone gives back. Measured only when
  the all-integer file fails a gate there (one file per group: minutes on the demo model).

Why the training studies too: the questions compare a file with the Keras models, which
needs no held-out data, and the demo's 60 validation studies made the search chase noise:
one changed decision there is 98.3% agreement, under the 99% conversion gate, so the
search had to reach zero flips and kept 24 of 36 groups float (docs/experiments.md).

The report ranks groups by decision impact, then by added tensor error; ``convert`` writes
it beside the file (``<file>.layers.json``) and prints the worst layers in one line.

``int8-mixed`` and ``qat-int8`` (:func:`search`) start from the all-integer file: a group that
passes alone in the report is kept (one float group); otherwise groups are kept in float,
worst first, one at a time, until the file passes both parity questions on the training
cache (no gate FAILs), or no candidate is left (then it keeps none: the file is all integer
and fails); it records the path it took. When no file of the first batch passes and even the
source itself (every layer float, float32 weights) fails there (a QAT model that decides
otherwise than the validated one), no float set can help: the search stops and keeps none.
Decisions near a threshold flip both ways, so more float is not always closer: on seed 1 of
the ship run one float group passed while every layer float with int8-stored weights did
not. The forward path adds groups on such noise too (the demo's seed 0 keeps 22 of 36 groups):
``--keep-float fewest`` then gives groups back to int8 where that costs nothing measurable on the
training cache (:func:`prune`; minutes more). The test set stays untouched by the search:
``ich-edge parity`` on held-out studies gives the verdict afterwards. ``--keep-float
LAYER,...`` names the groups instead.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from converters import layers as layers_lib
from ich_edge.precisions import INT8_MIXED

REPORT_SUFFIX = ".layers.json"
#: Groups the decision-impact ranking tries: those that add the most tensor error (one file each).
MAX_RANKED_GROUPS = 8


@dataclass
class Judge:
    """Judges candidate files on every study of the training cache against the float run (and a QAT source).

    ``describe(tflite_bytes) -> bytes`` embeds the description a file needs (labels,
    thresholds, sequence) so that parity reads it like any converted file.
    """

    #: The validated float RUN_DIR: a :class:`~ich_edge.training.run_dir.RunDir` opened once (or its path).
    run_dir: object
    data: Path
    describe: object
    converted_from: tuple = ()  # RunDirs (or paths) of the QAT source
    threads: int = 2
    #: The Keras models' scores, kept between calls (every call judges the same studies).
    memo: dict = field(default_factory=dict)

    def __call__(self, candidates: list[bytes]) -> list[dict]:
        """Per candidate: ``fails`` (a gate of either question FAILed), ``failures`` (their lines),
        ``disagreements`` (study decisions, over all labels, that differ from the validated model's) and
        ``slice_flips`` (the same for slice decisions)."""
        from ich_edge.training.parity import ParityConfig, run_parity

        with tempfile.TemporaryDirectory(prefix="ich_edge_mixed_") as scratch:
            paths = []
            for k, payload in enumerate(candidates):
                path = Path(scratch) / f"candidate_{k}.tflite"
                path.write_bytes(self.describe(payload))
                paths.append(path)
            report, _ = run_parity(self.run_dir, paths, self.data,
                                   ParityConfig(replicates=0, studies="all", threads=self.threads),
                                   converted_from=self.converted_from, reference_scores=self.memo)
        return [{"fails": any(entry[q]["verdict"] == "FAIL" for q in ("conversion", "deployment")),
                 "failures": entry["failures"],
                 "disagreements": sum(v["lost_positives"] + v["new_positives"]
                                      for v in entry["deployment"]["study"]["labels"].values()),
                 "slice_flips": sum(v["lost_positives"] + v["new_positives"]
                                    for v in entry["deployment"]["slice"]["labels"].values())}
                for entry in report["models"]]


def layer_report(calibrated: bytes, quantized: bytes, calibration, judge: Judge | None = None,
                 io: str = "float", log=print, float_weights: str = "int8") -> dict:
    """The per-layer report of ``quantized`` (see the module docstring)."""
    groups = layers_lib.LayerGroups.of(calibrated)
    errors = layers_lib.group_errors(layers_lib.tensor_errors(calibrated, quantized, calibration))
    ranked = sorted(errors, key=lambda g: -errors[g]["added"])[:MAX_RANKED_GROUPS]
    impact, base = {}, None
    if judge is not None:
        (base,) = judge([quantized])
    if base is not None and base["fails"] and ranked:  # only a failing file needs to know which layers to keep
        log(f"layer report: judging {len(ranked)} files, each with one more layer in float, on the training cache")
        verdicts = judge([layers_lib.quantize(calibrated, groups.nodes[g], io=io, float_weights=float_weights) for g in ranked])
        impact = {g: {"restored": base["disagreements"] - v["disagreements"], "passes_alone": not v["fails"]}
                  for g, v in zip(ranked, verdicts)}
    order = sorted(errors, key=lambda g: (-impact.get(g, {}).get("restored", 0), -errors[g]["added"]))
    rows = [{"group": g, "ops": groups.ops.get(g, []), **errors[g], **impact.get(g, {})} for g in order]
    return {
        "format": "ich-edge-layers/1",
        "measure": "rmse_per_scale: RMSE of the op output against the float calibrated graph, in quantization steps "
                   "(accumulated along the graph); added: what the layer adds to the error before it; restored (measured "
                   "when the all-integer file fails a gate on the training cache's studies): study decisions, all labels, that "
                   "keeping this layer in float gives back",
        "judged_on": None if base is None else "every study of the training cache (training and validation)",
        "judged": None if base is None else {"disagreements_all_int8": base["disagreements"], "fails": base["fails"],
                                                  "failures": base["failures"]},
        "kept_float": [],
        "layers": rows,
        "worst": [r["group"] for r in rows[:3]],
    }


def worst_line(report: dict) -> str:
    """One line naming the worst layers of a layer report."""
    parts = []
    for row in report["layers"][:3]:
        restored = f", restores {row['restored']} decisions" if "restored" in row else ""
        parts.append(f"{row['group']} ({row['rmse_per_scale']:.1f} steps{restored})")
    return "worst layers: " + "; ".join(parts)


def search(calibrated: bytes, report: dict, judge: Judge, io: str = "float", batch: int = 4,
           log=print, label: str = INT8_MIXED, float_weights: str = "int8") -> tuple[list[str], list[dict]]:
    """Keep float groups, worst first (the report's order), until the file has no FAIL on the training cache.

    A group that the report found to pass alone (``passes_alone``: already judged, one file
    per group) is the smallest answer and is kept without judging again. Otherwise the
    cumulative files are judged ``batch`` at a time (one parity run scores the Keras models
    once for all of them); the path stops at the first that passes. The first batch also
    judges the source itself (every group float, float32 weights): when no file of that batch
    passes and the source fails too, the source model decides otherwise than the validated
    one (a QAT model can) and the search keeps none. Returns ``(kept groups, path)``: each
    step's kept groups, disagreements and failures.
    """
    groups = layers_lib.LayerGroups.of(calibrated)
    candidates = [row["group"] for row in report["layers"]]
    path = []
    judged = report.get("judged")
    if judged is not None:  # the all-integer file, judged by the report
        path.append({"kept_float": [], "disagreements": judged["disagreements_all_int8"],
                     "passes": not judged["fails"], "failures": judged["failures"][:3]})
        alone = next((row for row in report["layers"] if row.get("passes_alone")), None)
        if judged["fails"] and alone is not None:
            path.append({"kept_float": [alone["group"]], "disagreements": judged["disagreements_all_int8"] - alone["restored"],
                         "passes": True, "failures": [], "from_report": True})
    steps = [candidates[:k] for k in range(len(path), len(candidates) + 1)]

    def files(chunk, weights=float_weights):
        return [layers_lib.quantize(calibrated, [n for g in kept for n in groups.nodes[g]], io=io, float_weights=weights)
                for kept in chunk]

    bound_checked = False
    while steps and not (path and path[-1]["passes"]):
        chunk, steps = steps[:batch], steps[batch:]
        bound = [] if bound_checked or not steps else files([candidates], "float32")
        verdicts = list(judge(files(chunk) + bound))
        source = verdicts.pop() if bound else None
        bound_checked = bound_checked or bool(bound)
        for kept, verdict in zip(chunk, verdicts):
            path.append({"kept_float": list(kept), "disagreements": verdict["disagreements"], "passes": not verdict["fails"],
                         "failures": verdict["failures"][:3]})
            if not verdict["fails"]:
                break
        if source is not None and source["fails"] and not path[-1]["passes"]:
            log(f"{label}: even the source with every layer float fails on the training cache "
                f"({'; '.join(source['failures'][:2])}): no float set helps, keeping none")
            path.append({"kept_float": list(candidates), "float_weights": "float32", "disagreements": source["disagreements"],
                         "passes": False, "failures": source["failures"][:3], "bound": True})
            return [], path
    for step in path:
        log(f"{label}: float {', '.join(step['kept_float']) or 'none'}: {step['disagreements']} decisions differ on "
            "the training cache, " + ("no gate fails" if step["passes"] else f"{len(step['failures'])} gate(s) fail"))
    return (list(path[-1]["kept_float"]) if path and path[-1]["passes"] else []), path


#: Rounds of :func:`prune` at most (each is two parity runs on the training cache).
MAX_PRUNE_ROUNDS = 3


def prune(calibrated: bytes, kept: list[str], judge: Judge, io: str = "float", log=print, label: str = INT8_MIXED,
          float_weights: str = "int8") -> tuple[list[str], list[dict]]:
    """``--keep-float fewest``: give float groups of :func:`search`'s file back to int8 where that costs nothing measurable.

    A group goes back when the file without it passes both questions on the training cache and
    its slice decisions (all labels; about 30 times as many as study decisions) differ from the
    validated model's no more often than the search's file's do. A pass alone is too weak: on the
    demo's seed 0 it gave back 16 of 22 groups, and that file failed conversion parity on the
    held-out studies (docs/experiments.md). A round judges the file without each kept group (the
    latest added first) in one parity run, then the cumulative removals of the groups that
    qualified in a second, and takes the largest that still qualifies; at most
    :data:`MAX_PRUNE_ROUNDS` rounds. Returns ``(kept groups, path)``: the search's file, then each
    cumulative step, marked ``"pruned": True``.
    """
    groups = layers_lib.LayerGroups.of(calibrated)

    def file(kept_now):
        return layers_lib.quantize(calibrated, [n for g in kept_now for n in groups.nodes[g]], io=io, float_weights=float_weights)

    current = list(kept)
    if len(current) < 2:  # without its one group the file is the all-integer one, which failed
        return current, []
    (base,) = judge([file(current)])
    limit = base["slice_flips"]
    path = [{"kept_float": list(current), "disagreements": base["disagreements"], "slice_flips": limit,
             "passes": not base["fails"], "failures": base["failures"][:3], "pruned": True}]

    def qualifies(verdict):
        return not verdict["fails"] and verdict["slice_flips"] <= limit

    for _ in range(MAX_PRUNE_ROUNDS):
        if len(current) < 2 or base["fails"]:
            break
        order = current[::-1]
        singles = judge([file([g for g in current if g != drop]) for drop in order])
        removable = [g for g, v in zip(order, singles) if qualifies(v)]
        log(f"{label}: fewest: {len(removable)} of {len(current)} float groups can go back to int8 one at a time "
            f"(at most {limit} slice decisions differing, as the search's file)")
        if not removable:
            break
        sets = [[g for g in current if g not in removable[:k]] for k in range(1, len(removable) + 1)]
        verdicts = [singles[order.index(removable[0])]] + (list(judge([file(s) for s in sets[1:]])) if len(sets) > 1 else [])
        taken = max(k for k, v in enumerate(verdicts, 1) if qualifies(v))
        path += [{"kept_float": s, "disagreements": v["disagreements"], "slice_flips": v["slice_flips"],
                  "passes": not v["fails"], "failures": v["failures"][:3], "pruned": True} for s, v in zip(sets, verdicts)]
        current = [g for g in current if g not in removable[:taken]]
        log(f"{label}: fewest: back to int8: {', '.join(removable[:taken])}; {len(current)} float groups left")
    return current, path
