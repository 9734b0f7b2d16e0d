"""A model with a SUBSET of the six labels (``ich-edge import --output-labels``) goes through every verb.

Two user models written outside the package (the paper's layout at toy size, tf_keras, random
weights): a 2-output model ``intraparenchymal,any`` and a 3-output model without ``any`` whose
file order is not ich-edge's. Each goes import -> qat -> convert (every precision) -> parity
-> bench's study AUC -> assets -> predict, and every report names only the model's labels.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from import_helpers import WINDOW, paper_like, write_cache
from ich_edge import LABELS
from ich_edge.cli import main

CASES = {
    "two-with-any": ("intraparenchymal", "any"),
    "three-without-any": ("subdural", "epidural", "intraventricular"),  # file order; ich-edge order differs
}


def _absent(labels) -> list[str]:
    return [label for label in LABELS if label not in labels]


def _mentions(text: str, labels) -> list[str]:
    """The absent labels that ``text`` names (as a whole word)."""
    import re

    return [label for label in _absent(labels) if re.search(rf"\b{label}\b", text)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return write_cache(tmp_path_factory.mktemp("subset") / "cache", studies=10)


@pytest.mark.parametrize("case", list(CASES))
def test_a_label_subset_goes_import_qat_convert_parity_bench_assets_predict(tmp_path, cache, case, capsys):
    from ich_edge.ingest.cache import Cache
    from ich_edge.runtime.bench.runner import study_auc
    from ich_edge.runtime.tflite_model import TFLiteStudyModel
    from ich_edge.training.evaluate import predict_series
    from ich_edge.training.parity import load_reference

    file_labels = CASES[case]
    labels = [label for label in LABELS if label in file_labels]  # the model's order: ich-edge's
    model = paper_like(outputs=len(file_labels))
    model.save(tmp_path / "user.h5")
    run, qat, tfl, par = (tmp_path / name for name in ("run", "qat", "tfl", "parity"))

    # import: the outputs are the file's columns, reordered by name
    assert main(["import", "--model", str(tmp_path / "user.h5"), "--out", str(run), "--output-labels", ",".join(file_labels),
                 "--data", str(cache)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["labels"] == labels and config["import"]["file_labels"] == list(file_labels)
    assert list(json.loads((run / "thresholds.json").read_text())["study"]) == labels
    unit = np.random.default_rng(1).uniform(0, 1, (2, WINDOW, 32, 32, 3)).astype(np.float32)
    from ich_edge.training.run import load_run

    rebuilt = np.asarray(load_run(run).model(unit, training=False))
    original = np.asarray(model(unit, training=False))
    assert rebuilt.shape == (2, WINDOW, len(labels))
    for i, label in enumerate(labels):
        assert np.abs(rebuilt[..., i] - original[..., file_labels.index(label)]).max() <= 1e-6

    # qat: trains on the cache's columns of these labels; its report and thresholds name only them
    assert main(["qat", "--model", str(run), "--data", str(cache), "--out", str(qat), "--epochs", "1",
                 "--batch-size", "2"]) == 0
    qat_report = json.loads((qat / "report.json").read_text())
    assert qat_report["labels"] == labels
    assert list(qat_report["validation"]["model"]["study"]["auc"]) == labels
    assert list(json.loads((qat / "thresholds.json").read_text())["slice"]) == labels
    assert not _mentions((qat / "report.md").read_text().split("# ich-edge training report")[0], labels)

    # convert: every precision; the files' descriptions carry the labels
    assert main(["convert", "--model", str(run), "--model", str(qat), "--precision", "all", "--data", str(cache),
                 "--out", str(tfl), "--calibration-windows", "4"]) == 0
    files = sorted(tfl.glob("*.tflite"))
    assert {f.stem.split("_", 2)[-1] for f in files} == {"fp32", "fp16", "dynamic", "int8", "qat-int8"}
    for path in files:
        tflite = TFLiteStudyModel(path)
        assert list(tflite.labels) == labels, path.name
        assert tflite.predict_series(Cache.open(cache).series()[0].images).shape[1] == len(labels)

    # fp32 equals the ORIGINAL file's outputs (parity's reference) within 1e-5
    fp32 = tfl / "cnn_lstm_fp32.tflite"
    reference = load_reference(run)
    series = Cache.open(cache).series()[1]
    expected = predict_series(reference.encoder, reference.head, series.images, reference.sequence_config)
    assert np.abs(TFLiteStudyModel(fp32).predict_series(series.images) - expected).max() <= 1e-5

    # parity, both questions: fp32 passes; every table names only the model's labels
    code = main(["parity", "--reference", str(run), "--converted-from", str(qat), "--model", str(fp32),
                 "--model", str(tfl / "cnn_lstm_qat-int8.tflite"), "--test", str(cache), "--study-set", "all",
                 "--out", str(par), "--bootstrap", "50", "--min-studies", "5", "--min-positive-studies", "1"])
    report = json.loads((par / "report.json").read_text())
    assert code == {"PASS": 0, "FAIL": 1, "INSUFFICIENT": 4}[report["verdict"]]
    by_file = {m["file"]: m for m in report["models"]}
    assert by_file["cnn_lstm_fp32.tflite"]["verdict"] == "PASS", by_file["cnn_lstm_fp32.tflite"]["failures"]
    assert report["labels"] == labels and list(report["rsna_weights"]) == labels
    assert report["evidence"]["gated_labels"] == labels
    for entry in report["models"]:
        for question in ("conversion", "deployment"):
            assert list(entry[question]["study"]["labels"]) == labels
    markdown = (par / "report.md").read_text()
    assert not _mentions(markdown, labels)
    assert "RSNA weights" in markdown and "not comparable with a six-label score" in markdown

    # bench's study AUC: the cache's columns of the model's labels
    auc = study_auc(fp32, Cache.open(cache).series(), 1)
    assert list(auc["per_label"]) == labels
    assert (auc["any"] is None) == ("any" not in labels)

    # assets: manifest, labels.txt and the golden sample list only the model's labels
    from ich_edge.assets import AssetsConfig, write_assets
    from ich_edge.assets.sample import SampleConfig

    app = tmp_path / "app"
    result = write_assets(AssetsConfig(model_path=fp32, out_dir=app, sample=SampleConfig(matrix_px=64, min_slices=6,
                                                                                         max_slices=8),
                                       parity_report=par, allow_weak_evidence=True))  # a 5-study cache
    assert result.manifest["labels"] == labels
    assert (app / "labels.txt").read_text().splitlines() == labels
    sample = json.loads((app / "sample" / "expected.json").read_text())
    assert list(sample["study"]) == labels and list(sample["ground_truth_study"]) == labels

    # predict (TFLite runtime, no TensorFlow involved): labels from the file's description
    capsys.readouterr()
    assert main(["predict", "--model", str(fp32), "--dicom", str(app / "sample" / "dicom"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    entry = out[0] if isinstance(out, list) else out
    assert list(entry["study"]) == labels


def test_an_unknown_label_name_is_one_line_and_writes_nothing(tmp_path, capsys):
    paper_like(outputs=2).save(tmp_path / "two.h5")
    code = main(["import", "--model", str(tmp_path / "two.h5"), "--out", str(tmp_path / "run"),
                 "--output-labels", "intraparenchymal,bleed"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "unknown label(s) 'bleed'" in err[0] and "epidural" in err[0]
    assert not (tmp_path / "run").exists()


def test_a_subset_whose_size_differs_from_the_outputs_is_refused(tmp_path, capsys):
    paper_like(outputs=2).save(tmp_path / "two.h5")
    code = main(["import", "--model", str(tmp_path / "two.h5"), "--out", str(tmp_path / "run"),
                 "--output-labels", "intraparenchymal,subdural,any"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "the model has 2 outputs but --output-labels names 3" in err[0]


def test_softmax_over_a_subset_needs_softmax_ok(tmp_path):
    from ich_edge.errors import ConfigError
    from ich_edge.training.importer import ImportConfig, import_model

    paper_like(outputs=2, activation="softmax").save(tmp_path / "soft.h5")
    with pytest.raises(ConfigError, match="not exclusive"):
        import_model(tmp_path / "soft.h5", tmp_path / "run", ImportConfig(labels=("subdural", "any")), log=lambda line: None)
    with pytest.raises(ConfigError, match="--softmax-ok needs --output-labels"):
        ImportConfig(softmax_ok=True)
    config = import_model(tmp_path / "soft.h5", tmp_path / "run", ImportConfig(labels=("any", "subdural"), softmax_ok=True),
                          log=lambda line: None)
    assert config["labels"] == ["subdural", "any"] and config["import"]["output_activation"] == "softmax"
