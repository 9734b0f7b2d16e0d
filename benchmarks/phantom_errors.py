"""Not a timing: which synthetic studies a trained model gets wrong, and what bleeds they hold.

Scores every study of a prepared test cache with a run's Keras model (the package's own
window, stitch and study rules), then lists the studies ranked by the score of each chosen
label, next to what the phantom drew in them (scenario and lesions, re-planned from the
synthetic set's seed; nothing is rendered). It shows, for instance, whether the false
epidurals are subdural studies.

    python benchmarks/phantom_errors.py RUN_DIR TEST_CACHE SYNTH_DIR [--labels epidural,intraparenchymal] [--top 25]

SYNTH_DIR is the ``ich-edge synth --out`` folder the test cache was prepared from (its
``synth_config.json`` gives the seed and options). Rows: rank, POS/neg for the label, score,
scenario, and one entry per lesion: subtype, size (thickness or largest semi-axis, mm) and
location. Listed: the ``--top`` highest scores and every positive study ranked below them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the ich_edge of this checkout
from ich_edge import LABELS  # noqa: E402
from ich_edge.ingest.cache import Cache  # noqa: E402
from ich_edge.errors import IchEdgeError  # noqa: E402
from ich_edge.sequence import study_probabilities  # noqa: E402
from ich_edge.synth.config import SynthConfig  # noqa: E402
from ich_edge.synth.study import plan_study  # noqa: E402
from ich_edge.synth.writer import recorded_options  # noqa: E402


def describe(lesion) -> str:
    """``epidural 12 mm temporal``: subtype, size and where."""
    if hasattr(lesion, "thickness_mm"):
        where = getattr(lesion, "bone", None) or ("falx" if getattr(lesion, "along_falx", False) else "convexity")
        return f"{lesion.subtype} {lesion.thickness_mm:.0f} mm {where}"
    if hasattr(lesion, "semi_mm"):
        return f"{lesion.subtype} {max(lesion.semi_mm):.0f} mm {lesion.location}"
    return lesion.subtype


def study_plans(synth_dir: Path) -> dict:
    """Study UID -> the plan the generator drew for it."""
    options = recorded_options(synth_dir)
    config = SynthConfig(**{k: v for k, v in options.items() if k in SynthConfig.__dataclass_fields__})
    plans = (plan_study(config, index) for index in range(config.studies))
    return {plan.study_uid: plan for plan in plans}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("test_cache", type=Path)
    parser.add_argument("synth_dir", type=Path)
    parser.add_argument("--labels", default="epidural,intraparenchymal", help="comma-separated labels to rank by")
    parser.add_argument("--top", type=int, default=25, help="highest-scoring studies listed in full")
    args = parser.parse_args(argv)
    labels = [name.strip() for name in args.labels.split(",") if name.strip()]
    unknown = [name for name in labels if name not in LABELS]
    if unknown:
        parser.error(f"unknown label(s) {unknown}; choose from {', '.join(LABELS)}")

    from ich_edge.training.evaluate import predict_studies
    from ich_edge.training.run import load_run

    run = load_run(args.run_dir)
    series = Cache.open(args.test_cache).series()
    scores = np.array([study_probabilities(s) for s in predict_studies(run.encoder, run.head, series, run.sequence_config)])
    try:
        plans = study_plans(args.synth_dir)
    except IchEdgeError as err:
        sys.exit(str(err))
    missing = [s.study_uid for s in series if s.study_uid not in plans]
    if missing:
        sys.exit(f"{len(missing)} cached studies are not in {args.synth_dir} (e.g. {missing[0]}); pass the synth folder "
                 "the test cache was prepared from")
    for name in labels:
        k = LABELS.index(name)
        order = np.argsort(-scores[:, k], kind="stable")
        print(f"== {name}: {int(sum(s.study_labels[k] for s in series))} positive of {len(series)} studies")
        for rank, i in enumerate(order):
            positive = bool(series[i].study_labels[k])
            if rank >= args.top and not positive:
                continue
            plan = plans[series[i].study_uid]
            lesions = "; ".join(describe(lesion) for lesion in plan.lesions) or "no bleed"
            print(f"{rank + 1:4d} {'POS' if positive else 'neg'} {scores[i, k]:.3f} {plan.scenario:<12} {lesions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
