"""``ich-edge predict`` on tiny DICOM series with a tiny hand-built model (no TensorFlow)."""

from __future__ import annotations

import builtins
import hashlib
import importlib.util
import io
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from ich_edge import LABELS
from ich_edge.cli import main
from ich_edge.dicom.write import SliceGeometry, build_ct_dataset, write_dataset_atomic
from ich_edge.errors import IchEdgeError, MissingDependencyError, ModelError, NoSeriesError, SeriesError
from ich_edge.runtime import predict
from ich_edge.runtime.montage import png_paths, suspicious_slices, write_montage
from ich_edge.transforms import Preprocess, PreprocessConfig
from phantom_slices import round_head_hu

SIZE_PX, WINDOW = 16, 4


def _load_helper():
    # tests/tiny_app_model.py is shared with tests/test_assets.py; tests/ is not a package.
    spec = importlib.util.spec_from_file_location("tiny_app_model", Path(__file__).parents[1] / "tiny_app_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny = _load_helper()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "cnn_lstm_qat-int8.tflite"
    path.write_bytes(tiny.tiny_model_bytes(size_px=SIZE_PX, window=WINDOW, stride=2))
    return path


def write_series(folder: Path, bright: list[bool], series_uid: str, prefix: str, study_uid: str = "1.2.3") -> list[str]:
    """Write one slice per flag, files and instance numbers in reverse order of position."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for k, flag in enumerate(bright):
        sop = f"ID_{prefix}{k:07x}"
        ds = build_ct_dataset(
            round_head_hu(flag),
            sop_instance_uid=sop,
            series_uid=series_uid,
            study_uid=study_uid,
            geometry=SliceGeometry(position_mm=(0.0, 0.0, -50.0 + 5.0 * k)),
            instance_number=len(bright) - k,
        )
        write_dataset_atomic(ds, folder / f"{sop}.dcm")
        ids.append(sop)
    return ids


@pytest.fixture(scope="module")
def positive_series(tmp_path_factory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("positive")
    ids = write_series(folder, [False, False, True, True, True, False, False], "1.2.3.1", "aa")
    return folder, ids


def test_positive_series_triage_line_and_slice_order(model_path, positive_series):
    folder, ids = positive_series
    model = predict.load_model(model_path)
    result = predict.predict_path(model, folder)
    (series,) = result.series
    assert series.slice_ids == ids  # bottom to top, although instance numbers run the other way
    line = predict.triage_line(series, result.points)
    # 7 slices 5 mm apart cover 35 mm: a positive stays positive, with the coverage warning.
    assert re.fullmatch(
        r"POSITIVE  any (0\.9\d|1\.00) \| subdural 0\.\d\d  slices 3-5 \| coverage incomplete: covers 35 mm .*", line
    ), line
    verdict = predict.triage(series, result.points)
    assert verdict.top_label == "subdural" and verdict.slice_runs == [(3, 5)]
    assert result.points.source == "model description"


def test_predict_matches_the_model_on_shared_preprocessing(model_path, positive_series):
    folder, _ = positive_series
    model = predict.load_model(model_path)
    (series,) = predict.predict_path(model, folder).series
    from ich_edge.dicom import find_series

    hu = find_series(folder).series[0].load().images
    images = Preprocess(PreprocessConfig(input_size_px=SIZE_PX)).volume(hu)
    np.testing.assert_array_equal(series.images, images)
    np.testing.assert_array_equal(series.slice_probabilities, model.predict_series(images))
    assert set(series.timing_ms) == {"read", "preprocess", "inference"}


def test_series_shorter_than_a_window_and_negative(model_path, tmp_path):
    write_series(tmp_path, [False, False], "1.2.3.2", "bb")
    model = predict.load_model(model_path)
    (series,) = predict.predict_path(model, tmp_path).series
    assert series.slice_probabilities.shape == (2, len(LABELS))
    line = predict.triage_line(series, predict.model_settings(model.description)[1])
    # Nothing positive, but 2 slices are no negative: INCOMPLETE (tests/runtime/test_predict_coverage.py).
    assert re.fullmatch(
        r"INCOMPLETE  any 0\.\d\d \| highest subtype subdural 0\.\d\d \| not a negative: "
        r"2 slices, fewer than one window of the model \(4\); covers 10 mm .*",
        line,
    ), line


def test_thresholds_come_from_the_model(tmp_path, positive_series):
    folder, _ = positive_series
    strict = {level: {label: 0.999 for label in LABELS} for level in ("slice", "study")}
    path = tmp_path / "strict.tflite"
    path.write_bytes(tiny.tiny_model_bytes(size_px=SIZE_PX, window=WINDOW, thresholds=strict))
    (series,) = predict.predict_path(predict.load_model(path), folder).series
    points = predict.OperatingPoints.from_description(predict.load_model(path).description)
    assert predict.triage(series, points).positive is False  # 7 slices (35 mm): INCOMPLETE, not NEGATIVE
    assert predict.triage_line(series, points).startswith("INCOMPLETE")
    description = tiny.default_description(SIZE_PX, WINDOW, 2, "fp32", None)
    del description["thresholds"]
    assert "default 0.5" in predict.OperatingPoints.from_description(description).source


def test_slice_runs():
    assert predict.slice_runs(np.array([0, 1, 1, 0, 1, 0, 1, 1], bool)) == [(2, 3), (5, 5), (7, 8)]
    assert predict.format_runs([(2, 3), (5, 5)]) == "2-3, 5"
    assert predict.slice_runs(np.zeros(3, bool)) == []


def test_cli_json_mixed_folder_reports_good_series_and_problems(model_path, tmp_path, capsys):
    ids = write_series(tmp_path, [False, True, True, False, False], "1.2.3.3", "cc")
    write_series(tmp_path, [False, False, False], "1.2.3.4", "dd", study_uid="1.2.4")
    (tmp_path / "notes.dcm").write_bytes(b"this is not DICOM")
    broken = tmp_path / "ID_ee0000000.dcm"  # a one-slice series whose pixels are cut short
    write_series(tmp_path / "tmp", [False], "1.2.3.5", "ee")
    data = (tmp_path / "tmp" / "ID_ee0000000.dcm").read_bytes()
    broken.write_bytes(data[: len(data) - 600])
    for file in (tmp_path / "tmp").iterdir():
        file.unlink()
    (tmp_path / "tmp").rmdir()

    code = main(["predict", "--model", str(model_path), "--dicom", str(tmp_path), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    reports = json.loads(captured.out)
    assert [r["series_uid"] for r in reports] == ["1.2.3.3", "1.2.3.4"]
    first = reports[0]
    for key in ("series_uid", "study_uid", "num_slices", "study", "positive", "slices", "model", "timing_ms", "problems"):
        assert key in first
    assert first["num_slices"] == 5 and [s["id"] for s in first["slices"]] == ids
    assert set(first["slices"][0]["probabilities"]) == set(LABELS)
    assert first["positive"]["any"] is True and reports[1]["positive"]["any"] is False
    assert first["model"]["precision"] == "qat-int8" and len(first["model"]["sha256"]) == 64
    assert set(first["timing_ms"]) == {"read", "preprocess", "inference"}
    assert "notes.dcm" in captured.err and "1.2.3.5" not in captured.out
    assert "ID_ee0000000.dcm" in captured.err


@pytest.mark.parametrize("runtime", ["interpreter", "compiled"])
def test_predict_reads_the_model_file_once(model_path, positive_series, tmp_path, monkeypatch, capsys, runtime):
    """`ich-edge predict` reads the .tflite once (ModelFile.open): checks, hash, description and
    the LiteRT runtime all use those bytes. Every Python open of the file is counted, and the file
    is moved away after the first one, so a second read by LiteRT's native loader fails too."""
    path = tmp_path / model_path.name
    path.write_bytes(model_path.read_bytes())
    target, opened = os.path.abspath(path), []
    real_open = io.open

    def counting_open(file, *args, **kwargs):
        handle = real_open(file, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) == target:
            opened.append(args[0] if args else kwargs.get("mode", "r"))
            if len(opened) == 1:
                os.rename(target, tmp_path / "moved_away.tflite")  # the open handle still reads it
        return handle

    monkeypatch.setattr(io, "open", counting_open)
    monkeypatch.setattr(builtins, "open", counting_open)
    folder, _ = positive_series
    code = main(["predict", "--model", str(path), "--dicom", str(folder), "--json", "--runtime", runtime])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert opened == ["rb"]
    (report,) = json.loads(captured.out)
    assert report["model"]["sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()


def test_cli_human_output(model_path, positive_series, capsys):
    folder, _ = positive_series
    assert main(["predict", "--model", str(model_path), "--dicom", str(folder), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "series 1/1  1.2.3.1  (7 slices" in out
    assert "POSITIVE  any" in out and "slices 3-5" in out
    assert out.count("\n  subdural ") == 1 and "triage aid, not a diagnosis" in out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such model file"),
        (lambda p: p.write_bytes(b"\x00" * 64), "not a TFLite flatbuffer"),
        (lambda p: p.write_bytes(tiny.tiny_model_bytes(size_px=SIZE_PX, description={"labels": list(LABELS)})),
         "description lacks"),
    ],
    ids=["missing", "not-tflite", "incomplete-description"],
)
def test_cli_bad_model_is_one_clear_line(tmp_path, positive_series, capsys, make, message):
    path = tmp_path / "model.tflite"
    make(path)
    code = main(["predict", "--model", str(path), "--dicom", str(positive_series[0])])
    err = capsys.readouterr().err
    assert code == 3 and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_model_without_description_is_refused(tmp_path):
    from ich_edge.runtime.description import DESCRIPTION_KEY

    data = bytearray(tiny.tiny_model_bytes(size_px=SIZE_PX))
    marker = DESCRIPTION_KEY.encode()
    data[data.find(marker)] = ord("X")  # rename the metadata entry: no description any more
    path = tmp_path / "plain.tflite"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="not an ich-edge model"):
        predict.load_model(path)


def test_cli_bad_input_path(model_path, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.dcm").write_bytes(b"nope")
    for target, message in ((tmp_path / "empty", "holds no files"), (tmp_path / "junk", "not a DICOM file")):
        code = main(["predict", "--model", str(model_path), "--dicom", str(target)])
        err = capsys.readouterr().err
        assert code == 3 and message in err and "Traceback" not in err


def test_unreadable_series_only_is_an_error(model_path, tmp_path):
    write_series(tmp_path / "src", [False], "1.2.3.9", "ff")
    data = (tmp_path / "src" / "ID_ff0000000.dcm").read_bytes()
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "ID_ff0000000.dcm").write_bytes(data[: len(data) - 600])
    (tmp_path / "only" / "other.dcm").write_bytes(b"junk")
    with pytest.raises(IchEdgeError, match="truncated") as caught:
        predict.predict_path(predict.load_model(model_path), tmp_path / "only")
    assert isinstance(caught.value, (SeriesError, NoSeriesError))


def test_png_paths_rule(tmp_path):
    assert png_paths(tmp_path / "m.png", 1) == [tmp_path / "m.png"]
    assert png_paths(tmp_path / "m.png", 2) == [tmp_path / "m_1.png", tmp_path / "m_2.png"]
    assert png_paths(tmp_path / "pngs", 2) == [tmp_path / "pngs" / "series_1.png", tmp_path / "pngs" / "series_2.png"]


def test_cli_png_montages(model_path, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    write_series(tmp_path / "in", [False, True, True, False], "1.2.3.6", "gg")
    write_series(tmp_path / "in", [False, False], "1.2.3.7", "hh")
    assert main(["predict", "--model", str(model_path), "--dicom", str(tmp_path / "in"), "--png", str(tmp_path / "out")]) == 0
    assert "wrote" in capsys.readouterr().out
    for k in (1, 2):
        png = tmp_path / "out" / f"series_{k}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_suspicious_slices_are_the_top_any_in_order(model_path, positive_series):
    folder, _ = positive_series
    model = predict.load_model(model_path)
    result = predict.predict_path(model, folder)
    assert suspicious_slices(result.series[0], result.points, max_tiles=3) == [2, 3, 4]


def test_png_without_matplotlib_names_the_install(model_path, positive_series, tmp_path, monkeypatch):
    folder, _ = positive_series
    model = predict.load_model(model_path)
    result = predict.predict_path(model, folder)
    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match="pip install matplotlib"):
        write_montage(result.series[0], result.points, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_study_probabilities_come_from_the_one_study_rule(monkeypatch):
    from ich_edge import sequence

    monkeypatch.setattr(sequence, "study_probabilities", lambda p: np.asarray(p).mean(axis=0))  # a spy rule
    prediction = predict.SeriesPrediction(
        index=1, series_uid="1.2", study_uid=None, slice_ids=["a", "b"],
        slice_probabilities=np.array([[0.0, 1.0], [1.0, 1.0]], np.float32),
        images=np.zeros((2, 4, 4, 3), np.uint8), timing_ms={},
    )
    np.testing.assert_allclose(prediction.study_probabilities, [0.5, 1.0])  # predict re-implements nothing
