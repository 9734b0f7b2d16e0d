"""``ich-edge bench --data`` and ``ich-edge parity`` report one study AUC for one model file and cache.

The cache has a study of two series, one of them unlabelled and scored high by the model:
the app sees every series, so that score is the study's (ich_edge.study_truth). Bench used to
skip the unlabelled series and report a higher AUC than parity. The model is
tests/tiny_app_model.py's stateless float file (a real LiteRT model, no TensorFlow needed);
parity's study level is :func:`ich_edge.training.evaluate.gather_levels` on the file's slice
scores, its AUC :func:`ich_edge.metrics.roc_auc`, as in ``ich_edge.training.parity``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ich_edge import LABELS
from ich_edge.ingest.cache import Cache, CachedSeries
from ich_edge.metrics import roc_auc
from ich_edge.precisions import FP32
from ich_edge.transforms import PreprocessConfig

SIZE_PX, WINDOW, STRIDE, SLICES = 16, 4, 2, 3
ANY = LABELS.index("any")


def _tiny_model(folder: Path) -> Path:
    spec = importlib.util.spec_from_file_location("tiny_app_model", Path(__file__).parents[1] / "tiny_app_model.py")
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    path = folder / "tiny_fp32.tflite"
    path.write_bytes(tiny.tiny_model_bytes(SIZE_PX, WINDOW, STRIDE, quantized_io=False, precision=FP32))
    return path


def _series(study: str, name: str, brain: float, positive: bool | None) -> CachedSeries:
    """A series of uniform slices whose brain-window channel is ``brain`` (the tiny model's ``any`` rises with it)."""
    images = np.zeros((SLICES, SIZE_PX, SIZE_PX, 3), np.uint8)
    images[..., 0] = round(brain * 255)
    row = np.full(len(LABELS), -1, np.int8)
    if positive is not None:
        row[:] = 0
        row[[LABELS.index("intraparenchymal"), ANY]] = int(positive)
    slices = np.tile(row, (SLICES, 1))
    return CachedSeries(name, study, images, slices, row, tuple(f"{name}.{i}" for i in range(SLICES)))


@pytest.fixture(scope="module")
def cache_and_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study_auc_agreement")
    cache = Cache.create(folder / "cache", PreprocessConfig(input_size_px=SIZE_PX))
    for k, brain in enumerate((0.5, 0.55, 0.6)):
        cache.write(_series(f"1.3.{k}", f"1.2.{k}", brain, positive=True))
    for k, brain in enumerate((0.2, 0.3), start=3):
        cache.write(_series(f"1.3.{k}", f"1.2.{k}", brain, positive=False))
    cache.write(_series("1.3.9", "1.2.9.a", 0.1, positive=False))  # negative study, labelled series scored low ...
    cache.write(_series("1.3.9", "1.2.9.b", 0.9, positive=None))  # ... and an unlabelled series scored high
    cache.write(_series("1.3.10", "1.2.10", 0.95, positive=None))  # a study without labels: in neither AUC
    return Cache.open(folder / "cache").load_all(), _tiny_model(folder)


def test_bench_and_parity_report_one_study_auc(cache_and_model):
    from ich_edge.runtime.bench.runner import study_auc
    from ich_edge.runtime.tflite_model import TFLiteStudyModel
    from ich_edge.training.evaluate import gather_levels

    series_list, path = cache_and_model
    bench = study_auc(path, series_list, threads=1)
    model = TFLiteStudyModel(path, num_threads=1)
    levels = gather_levels(series_list, [model.predict_series(s.images) for s in series_list], model.labels)
    assert bench["studies"] == len(levels["study_uids"]) == 6
    for i, label in enumerate(model.labels):
        parity = roc_auc(levels["study_true"][:, i], levels["study_scores"][:, i])
        assert bench["per_label"][label] == (None if np.isnan(parity) else pytest.approx(parity)), label
    # By hand: the two-series negative study outranks the three positives, the other two negatives do not.
    assert bench["any"] == pytest.approx(6 / 9)
