"""``ich-edge assets``: the demo-app folder, written for a tiny hand-built model (no TensorFlow)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest

from ich_edge import LABELS
from ich_edge.assets.build import ASSET_NAMES, AssetsConfig, _notes, _training_sentence, write_assets
from ich_edge.assets.sample import SampleConfig
from ich_edge.cli import main
from ich_edge.errors import ConfigError, GateFailedError, OutputExistsError
from ich_edge.fileio import folder_names
from ich_edge.transforms import PreprocessConfig
from tiny_app_model import tiny_model_bytes

SIZE_PX, WINDOW, STRIDE = 16, 4, 2
SMALL_SAMPLE = SampleConfig(matrix_px=64, min_slices=6, max_slices=8)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "cnn_lstm_qat-int8.tflite"
    path.write_bytes(tiny_model_bytes(size_px=SIZE_PX, window=WINDOW, stride=STRIDE))
    return path


def write_parity_report(folder: Path, model: Path, verdict: str = "PASS", evidence: dict | None = None) -> Path:
    """A parity report.json with one entry for ``model`` (its sha256) and ``verdict`` on both questions.

    The report's contents are the parity tests' business (tests/parity builds real ones from
    converted files); here only what ``assets`` reads matters: the sha256 and the verdicts.
    """
    import hashlib

    folder.mkdir(parents=True, exist_ok=True)
    question = {"verdict": verdict, "reference": "run", "failures": [] if verdict == "PASS" else ["x: subdural drop"]}
    entry = {"file": model.name, "precision": "qat-int8", "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
             "verdict": verdict, "failures": question["failures"], "not_evaluable": [],
             "conversion": {**question, "verdict": "PASS"}, "deployment": question}
    evidence = {"min_studies": 20, "min_positive_studies": 5, "gated_labels": list(LABELS), "studies": 40, **(evidence or {})}
    report = {"format": "ich-edge-parity/2", "verdict": verdict, "models": [entry], "labels": list(LABELS), "evidence": evidence}
    (folder / "report.json").write_text(json.dumps(report))
    return folder


@pytest.fixture(scope="module")
def parity_dir(model_path, tmp_path_factory) -> Path:
    return write_parity_report(tmp_path_factory.mktemp("parity"), model_path)


@pytest.fixture(scope="module")
def assets(model_path, parity_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("app") / "android_demo_assets"
    write_assets(AssetsConfig(model_path=model_path, out_dir=out, sample_seed=3, sample=SMALL_SAMPLE, parity_report=parity_dir))
    return out


@pytest.fixture(scope="module")
def manifest(assets) -> dict:
    return json.loads((assets / "manifest.json").read_text())


def test_folder_layout(assets, model_path, manifest):
    assert sorted(p.name for p in assets.iterdir()) == sorted(ASSET_NAMES)
    assert (assets / "model.tflite").read_bytes() == model_path.read_bytes()
    assert (assets / "labels.txt").read_text().splitlines() == list(LABELS)
    assert (assets / "model.tflite").stat().st_size < 5 * 2**20
    sample_bytes = sum(p.stat().st_size for p in (assets / "sample").rglob("*") if p.is_file())
    dicom_bytes = sum(p.stat().st_size for p in (assets / "sample" / "dicom").iterdir())
    assert dicom_bytes < 4 * 2**20 and manifest["sample"]["dicom_bytes"] == dicom_bytes
    assert manifest["sample"]["bytes"] == sample_bytes
    assert sorted(p.name for p in (assets / "snippets").iterdir()) == ["IchEdgeModel.kt", "IchEdgeModel.swift"]
    assert not list(assets.parent.glob(".*tmp*"))


def test_manifest_is_complete(manifest, model_path):
    import hashlib

    assert manifest["sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()
    assert manifest["labels"] == list(LABELS) and manifest["precision"] == "qat-int8"
    encode, classify = manifest["signatures"]["encode"], manifest["signatures"]["classify"]
    assert encode["inputs"][0]["name"] == "image" and encode["inputs"][0]["dtype"] == "uint8"
    assert encode["inputs"][0]["shape_signature"] == [-1, SIZE_PX, SIZE_PX, 3]
    assert encode["inputs"][0]["quantization"] == {"scale": pytest.approx(1 / 255), "zero_point": 0}
    assert classify["outputs"][0]["shape"] == [1, WINDOW, len(LABELS)]
    pre = manifest["preprocessing"]
    assert pre["input_size_px"] == SIZE_PX and pre["air_hu"] == -1024.0
    config = PreprocessConfig()
    assert [(w["center_hu"], w["width_hu"]) for w in pre["windows"]] == list(config.windows_hu)
    assert [w["low_hu"] for w in pre["windows"]] == [0.0, -20.0, -800.0]
    for key in ("hu", "padding", "resize", "window", "uint8", "value_scaling", "quantize", "slice_order", "layout"):
        assert isinstance(pre[key], str) and len(pre[key]) > 20, key
    assert manifest["sequence"]["window_slices"] == WINDOW and manifest["sequence"]["stride_slices"] == STRIDE
    assert "mean" in manifest["sequence"]["stitch_rule"] and "max" in manifest["study_rule"]
    assert set(manifest["thresholds"]["study"]) == set(LABELS) == set(manifest["thresholds"]["slice"])
    assert manifest["runtime"]["tested_with"].startswith("ai-edge-litert")
    assert manifest["notes"] == []
    assert manifest["parity"]["passed"] is True and manifest["parity"]["sha256"] == manifest["sha256"]


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # RSNA-style IDs, on purpose
def test_sample_is_a_positive_synthetic_rle_study(assets, manifest):
    files = sorted((assets / "sample" / "dicom").glob("*.dcm"))
    expected = json.loads((assets / "sample" / "expected.json").read_text())
    assert len(files) == expected["num_slices"] == manifest["sample"]["num_slices"]
    assert SMALL_SAMPLE.min_slices <= len(files) <= SMALL_SAMPLE.max_slices
    assert expected["ground_truth_study"]["any"] == 1
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
        assert ds.Rows == SMALL_SAMPLE.matrix_px and ds.Modality == "CT"
        assert str(ds.PatientName) == "Phantom^Synthetic"
        assert path.stem == ds.SOPInstanceUID


def test_sample_tensors_and_outputs_are_what_ich_edge_computes(assets, manifest, model_path):
    from ich_edge.dicom import find_series
    from ich_edge.runtime.tflite_model import TFLiteStudyModel
    from ich_edge.transforms import Preprocess

    series = find_series(assets / "sample" / "dicom").series[0]
    images = Preprocess(PreprocessConfig(input_size_px=SIZE_PX)).volume(series.load().images)
    shipped = np.load(assets / "sample" / "images_uint8.npy")
    assert shipped.dtype == np.uint8 and np.array_equal(shipped, images)
    assert manifest["sample"]["encode_input"] is None  # uint8 input with scale 1/255: the images themselves
    model = TFLiteStudyModel(model_path)
    expected = json.loads((assets / "sample" / "expected.json").read_text())
    golden = np.array([[s["probabilities"][label] for label in LABELS] for s in expected["slices"]], np.float32)
    np.testing.assert_array_equal(golden, model.predict_series(images))
    assert [s["id"] for s in expected["slices"]] == series.slice_ids
    np.testing.assert_array_equal(np.load(assets / "sample" / "features.npy"), model.encode(images))


def _kotlin_constants(text: str) -> dict[str, str]:
    found = dict(re.findall(r"const val (\w+) = (.+?)\s*(?://.*)?$", text, re.M))
    found.update(re.findall(r"^\s*val (\w+) = (?:floatArrayOf|arrayOf)\(([^)]*)\)", text, re.M))
    return found


def _swift_constants(text: str) -> dict[str, str]:
    found = dict(re.findall(r"static let (\w+)(?:: \[?\w+\]?)? = \[?(.+?)\]?\s*(?://.*)?$", text, re.M))
    return found


def _number_list(text: str) -> list[float]:
    return [float(item.strip().rstrip("f")) for item in text.split(",") if item.strip()]


def _string_list(text: str) -> list[str]:
    return re.findall(r'"([^"]*)"', text)


def _expected_constants(manifest: dict) -> dict:
    pre, seq, sig = manifest["preprocessing"], manifest["sequence"], manifest["signatures"]
    values = {
        "labels": manifest["labels"],
        "sha256": manifest["sha256"],
        "input_size": pre["input_size_px"],
        "air": pre["air_hu"],
        "center": [w["center_hu"] for w in pre["windows"]],
        "width": [w["width_hu"] for w in pre["windows"]],
        "low": [w["low_hu"] for w in pre["windows"]],
        "scale_per_hu": [w["scale_per_hu"] for w in pre["windows"]],
        "unit": pre["unit_per_pixel"],
        "window": seq["window_slices"],
        "stride": seq["stride_slices"],
        "features": seq["feature_dim"],
        "slice_thresholds": [manifest["thresholds"]["slice"][label] for label in manifest["labels"]],
        "study_thresholds": [manifest["thresholds"]["study"][label] for label in manifest["labels"]],
    }
    for key in ("encode", "classify"):
        for role, entries in (("input", sig[key]["inputs"]), ("output", sig[key]["outputs"])):
            spec = entries[0]
            values[f"{key}_{role}"] = (spec["name"], spec["dtype"], spec["quantization"]["scale"],
                                       spec["quantization"]["zero_point"])
    return values


def _f32(values) -> list:
    return [np.float32(v) for v in values]


def test_kotlin_snippet_constants_agree_with_manifest(assets, manifest):
    text = (assets / "snippets" / "IchEdgeModel.kt").read_text()
    assert "{{" not in text and "runSignature" in text
    k = _kotlin_constants(text)
    want = _expected_constants(manifest)
    assert _string_list(k["LABELS"]) == want["labels"]
    assert k["MODEL_SHA256"].strip('"') == want["sha256"]
    assert int(k["INPUT_SIZE_PX"]) == want["input_size"]
    assert np.float32(k["AIR_HU"].rstrip("f")) == np.float32(want["air"])
    for name, key in (("WINDOW_CENTER_HU", "center"), ("WINDOW_WIDTH_HU", "width"), ("WINDOW_LOW_HU", "low"),
                      ("WINDOW_SCALE_PER_HU", "scale_per_hu"), ("SLICE_THRESHOLDS", "slice_thresholds"),
                      ("STUDY_THRESHOLDS", "study_thresholds")):
        assert _f32(_number_list(k[name])) == _f32(want[key]), name
    assert np.float32(k["UNIT_PER_PIXEL"].rstrip("f")) == np.float32(want["unit"])
    assert (int(k["WINDOW_SLICES"]), int(k["STRIDE_SLICES"]), int(k["FEATURE_DIM"])) == (
        want["window"], want["stride"], want["features"])
    for key in ("encode", "classify"):
        for role in ("input", "output"):
            prefix = f"{key}_{role}".upper()
            name, dtype, scale, zero_point = want[f"{key}_{role}"]
            assert k[prefix].strip('"') == name and k[f"{prefix}_DTYPE"].strip('"') == dtype
            assert np.float32(k[f"{prefix}_SCALE"].rstrip("f")) == np.float32(scale)
            assert int(k[f"{prefix}_ZERO_POINT"]) == zero_point


def test_swift_snippet_constants_agree_with_manifest(assets, manifest):
    text = (assets / "snippets" / "IchEdgeModel.swift").read_text()
    assert "{{" not in text and "signatureRunner(with:" in text
    s = _swift_constants(text)
    want = _expected_constants(manifest)
    assert _string_list(s["labels"]) == want["labels"]
    assert s["modelSha256"].strip('"') == want["sha256"]
    assert int(s["inputSizePx"]) == want["input_size"]
    for name, key in (("windowCenterHu", "center"), ("windowWidthHu", "width"), ("windowLowHu", "low"),
                      ("windowScalePerHu", "scale_per_hu"), ("sliceThresholds", "slice_thresholds"),
                      ("studyThresholds", "study_thresholds")):
        assert _f32(_number_list(s[name])) == _f32(want[key]), name
    assert np.float32(s["unitPerPixel"]) == np.float32(want["unit"]) and np.float32(s["airHu"]) == np.float32(want["air"])
    assert (int(s["windowSlices"]), int(s["strideSlices"]), int(s["featureDim"])) == (
        want["window"], want["stride"], want["features"])
    for key in ("encode", "classify"):
        for role in ("input", "output"):
            prefix = f"{key}{role.capitalize()}"
            name, dtype, scale, zero_point = want[f"{key}_{role}"]
            assert s[prefix].strip('"') == name and s[f"{prefix}Dtype"].strip('"') == dtype
            assert np.float32(s[f"{prefix}Scale"]) == np.float32(scale)
            assert int(s[f"{prefix}ZeroPoint"]) == zero_point


def test_readme_is_filled_from_the_manifest(assets, manifest):
    text = (assets / "README.md").read_text()
    assert "{{" not in text and manifest["sha256"] in text
    assert "| 1 | subdural | 80 | 200 | -20 .. 180 |" in text
    assert f"Classify windows** of {WINDOW} consecutive slices" in text
    assert f"--model cnn_lstm_{manifest['precision']}.tflite" in text  # regenerate the file that shipped
    assert f"the model's {len(manifest['labels'])} labels in output order" in text


def test_existing_folder_needs_force(model_path, tmp_path):
    out = tmp_path / "assets"
    out.mkdir()
    (out / "README.md").write_text("placeholder")
    with pytest.raises(OutputExistsError, match="--force"):
        write_assets(AssetsConfig(model_path=model_path, out_dir=out))
    (out / "my_notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="my_notes.txt"):
        write_assets(AssetsConfig(model_path=model_path, out_dir=out, force=True))
    assert (out / "my_notes.txt").read_text() == "keep me"


def test_force_replaces_an_assets_folder_and_cli(model_path, parity_dir, tmp_path, capsys):
    out = tmp_path / "assets"
    out.mkdir()
    (out / "README.md").write_text("placeholder")
    code = main(["assets", "--model", str(model_path), "--out", str(out), "--force", "--sample-seed", "5",
                 "--parity", str(parity_dir / "report.json")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "wrote" in captured.out and "expected study probabilities" in captured.out
    assert "ich-edge assets" in (out / "README.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["assets"]  # no staging or old copy left


def test_a_model_without_passing_parity_is_refused_unless_allowed(model_path, tmp_path, capsys):
    failed = write_parity_report(tmp_path / "parity", model_path, verdict="FAIL")
    out = tmp_path / "app"
    code = main(["assets", "--model", str(model_path), "--out", str(out), "--parity", str(failed)])
    assert code == 1 and "parity verdict FAIL" in capsys.readouterr().err and not out.exists()
    with pytest.raises(GateFailedError, match="no parity report was given"):
        write_assets(AssetsConfig(model_path=model_path, out_dir=out, sample=SMALL_SAMPLE))
    assert not out.exists()
    code = main(["assets", "--model", str(model_path), "--out", str(out), "--parity", str(failed), "--allow-failed-parity"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "NOT PASSED, shipped with --allow-failed-parity" in captured.out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parity"]["allowed_failed_parity"] is True and manifest["parity"]["deployment"] == "FAIL"
    assert "shipped WITHOUT a passing parity report" in (out / "README.md").read_text()
    shipped = (out / "manifest.json").read_text() + (out / "README.md").read_text()
    assert str(tmp_path) not in shipped and "parity verdict FAIL in report.json" in manifest["parity"]["problem"]


def test_failure_leaves_nothing_behind(model_path, tmp_path, monkeypatch):
    import ich_edge.assets.build as assets_module

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(assets_module, "make_sample_within_spread", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_assets(AssetsConfig(model_path=model_path, out_dir=tmp_path / "assets", allow_failed_parity=True))
    assert list(tmp_path.iterdir()) == []


def test_bad_options_and_notes(tmp_path):
    with pytest.raises(ConfigError, match="--sample-seed"):
        AssetsConfig(model_path=tmp_path / "m.tflite", out_dir=tmp_path / "a", sample_seed=-1)
    with pytest.raises(ConfigError, match="min <= max"):
        SampleConfig(min_slices=9, max_slices=4)
    (tmp_path / "sample").mkdir()
    (tmp_path / "model.tflite").write_bytes(b"x" * 10)
    assert "phones should get qat-int8" in _notes({"precision": "fp32"}, tmp_path)[0]
    assert not any("phones should get" in note for note in _notes({"precision": "int8-mixed"}, tmp_path))
    code = main(["assets", "--model", str(tmp_path / "missing.tflite"), "--out", str(tmp_path / "out")])
    assert code != 0 and not (tmp_path / "out").exists()


def test_training_sentence_names_the_data_origin_without_local_paths():
    synthetic = {"cache": "/tmp/x/cache_train", "series": 300, "synthetic": True, "test_cache": "/tmp/x/cache_test"}
    sentence = _training_sentence(synthetic)
    assert "synthetic phantom studies (not real patients)" in sentence and "series: 300" in sentence
    assert "/tmp/x" not in sentence and "synthetic: True" not in sentence
    assert "not made by ich-edge synth" in _training_sentence({"series": 5, "synthetic": False})
    assert "unrecorded origin" in _training_sentence({"series": 5})
    assert "not recorded" in _training_sentence(None)


def test_the_manifest_carries_folder_names_not_the_training_machine_paths():
    record = {"cache": "/mnt/pacs/stroke_2026/cache_train", "series": 300, "test_cache": "C:\\data\\cache_test",
              "qat": {"source_run": "/home/me/run"}, "files": ["/a/b.csv", "relative/c"], "label_source": "slice"}
    assert folder_names(record) == {"cache": "cache_train", "series": 300, "test_cache": "cache_test",
                                     "qat": {"source_run": "run"}, "files": ["b.csv", "relative/c"], "label_source": "slice"}
    shares = ["\\\\pacs\\share\\alice\\cache", "\\\\?\\C:\\studies\\cache", "~/alice/cache", "file:///srv/x/cache",
              "d:/alice/cache/", "/srv/alice/cache/"]
    assert folder_names(shares) == ["cache"] * len(shares)
    assert folder_names(["qat-int8 / fp16", "a:b", "1:/"]) == ["qat-int8 / fp16", "a:b", "1:/"]


def test_the_committed_assets_name_no_path_of_the_machine_that_made_them():
    from ich_edge.runtime.description import read_description

    assets = Path(__file__).resolve().parents[1] / "android_demo_assets"
    embedded = json.dumps(read_description(assets / "model.tflite"))  # the description inside the model file
    for text in ((assets / "manifest.json").read_text(), embedded, (assets / "README.md").read_text()):
        assert not re.search(r'"(/|[A-Za-z]:\\\\)[^"]*"', text), re.findall(r'"(/[^"]*)"', text)[:3]
        assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text
