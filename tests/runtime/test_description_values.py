"""A model's description is input: hostile values are refused (one line, exit 3) before any work.

Each case re-embeds a modified description into the committed, converted
android_demo_assets/model.tflite (encode input 128 px, classify window 24 slices), so the
file is a real ich-edge model in every other respect.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest

from ich_edge.cli import main
from ich_edge.errors import ModelError
from ich_edge.runtime.description import embed_description, read_description
from ich_edge.runtime.model_check import check_model_file

REAL_MODEL = Path(__file__).parents[2] / "android_demo_assets" / "model.tflite"


def _set(path: tuple, value):
    def edit(description: dict) -> None:
        node = description
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


#: case -> (edit of the description, text the error line must contain)
HOSTILE = {
    "nan-threshold": (_set(("thresholds", "study", "any"), math.nan), "study threshold of 'any' is nan"),
    "threshold-above-1": (_set(("thresholds", "study", "any"), 1.5), "study threshold of 'any' is 1.5"),
    "negative-threshold": (_set(("thresholds", "slice", "subdural"), -0.1), "slice threshold of 'subdural'"),
    "infinite-threshold": (_set(("thresholds", "slice", "any"), math.inf), "slice threshold of 'any' is inf"),
    "string-threshold": (_set(("thresholds", "study", "any"), "0.5"), "study threshold of 'any' is '0.5'"),
    "bool-threshold": (_set(("thresholds", "study", "any"), True), "study threshold of 'any' is True"),
    "thresholds-not-object": (_set(("thresholds",), "high"), "thresholds 'high' is not an object"),
    "nan-specificity": (_set(("thresholds", "specificity"), math.nan), "specificity nan"),
    "nan-window-center": (_set(("preprocessing", "windows_hu", 0, 0), math.nan), "window 0"),
    "nan-window-width": (_set(("preprocessing", "windows_hu", 1, 1), math.nan), "window 1"),
    "zero-window-width": (_set(("preprocessing", "windows_hu", 2, 1), 0.0), "needs 0 < width"),
    "negative-window-width": (_set(("preprocessing", "windows_hu", 0, 1), -80.0), "needs 0 < width"),
    "huge-window": (_set(("preprocessing", "windows_hu", 0, 1), 1e300), "needs 0 < width"),
    "string-window": (_set(("preprocessing", "windows_hu", 0, 0), "40"), "window 0"),
    "two-windows": (_set(("preprocessing", "windows_hu"), [[40.0, 80.0], [80.0, 200.0]]), "three (center_hu, width_hu)"),
    "input-size-60000": (_set(("preprocessing", "input_size_px"), 60000), "input_size_px 60000"),
    "input-size-other": (_set(("preprocessing", "input_size_px"), 256), "differs from the encode input tensor's 128 px"),
    "input-size-float": (_set(("preprocessing", "input_size_px"), 128.5), "input_size_px 128.5"),
    "input-size-string": (_set(("preprocessing", "input_size_px"), "128"), "input_size_px '128'"),
    "window-slices-other": (_set(("sequence", "window_slices"), 12), "differs from the classify input tensor's 24"),
    "window-slices-string": (_set(("sequence", "window_slices"), "24"), "window_slices '24'"),
    "stride-above-window": (_set(("sequence", "stride_slices"), 30), "lacks a valid sequence rule"),
    "repeated-labels": (_set(("labels",), ["any"] * 6), "repeat a name"),
    "labels-too-few": (_set(("labels",), ["any"]), "signatures do not fit together"),
}


@pytest.fixture(scope="module")
def real_description() -> dict:
    return read_description(REAL_MODEL)


@pytest.fixture(params=sorted(HOSTILE))
def hostile_model(request, real_description, tmp_path) -> tuple[Path, str]:
    edit, message = HOSTILE[request.param]
    description = copy.deepcopy(real_description)
    edit(description)
    path = tmp_path / f"{request.param}.tflite"
    path.write_bytes(embed_description(REAL_MODEL.read_bytes(), description))
    return path, message


def test_the_real_description_is_fit(real_description, tmp_path):
    path = tmp_path / "same.tflite"
    path.write_bytes(embed_description(REAL_MODEL.read_bytes(), real_description))
    assert check_model_file(path) == real_description


def test_a_description_without_thresholds_is_fit(real_description, tmp_path):
    """No thresholds: predict uses its stated default (and says so); that is not hostile."""
    description = {k: v for k, v in real_description.items() if k != "thresholds"}
    path = tmp_path / "no-thresholds.tflite"
    path.write_bytes(embed_description(REAL_MODEL.read_bytes(), description))
    assert "thresholds" not in check_model_file(path)


def test_hostile_descriptions_are_refused_by_the_shared_check(hostile_model):
    path, message = hostile_model
    with pytest.raises(ModelError) as caught:
        check_model_file(path)
    assert message in str(caught.value) and "convert" in str(caught.value)


@pytest.mark.parametrize("verb", ["predict", "bench", "assets"])
def test_hostile_descriptions_are_one_line_and_exit_3_in_every_verb(hostile_model, verb, tmp_path, capsys):
    path, message = hostile_model
    out = tmp_path / "out"
    argv = {
        "predict": ["predict", "--model", str(path), "--dicom", str(tmp_path / "no-series-needed"), "--json"],
        "bench": ["bench", "--model", str(path), "--backend", "xnnpack", "--runs", "2", "--out", str(out / "r.json")],
        "assets": ["assets", "--model", str(path), "--out", str(out), "--allow-failed-parity"],
    }[verb]
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 3, captured.err
    assert len(lines) == 1 and lines[0].startswith("ich-edge: error: ") and message in lines[0], captured.err
    assert "Traceback" not in captured.err and not out.exists()
