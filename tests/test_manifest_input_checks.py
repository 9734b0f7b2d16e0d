"""``manifest.input_checks``: the numbers an app judges its input with are ich-edge's own.

The web demo (web_demo/src/checks.js) and the phone apps read these numbers from the manifest
instead of carrying copies; so each must equal the constant ``ich-edge predict`` applies, and
each rule must say in words what to do with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ich_edge.assets import manifest as manifest_module
from ich_edge.assets.manifest import RULES, build_manifest, input_checks
from ich_edge.dicom import plausibility
from ich_edge.dicom.series import GAP_FACTOR, MAX_ORIENTATION_DIFF_DEG
from ich_edge.dicom.write import AXIAL_ORIENTATION
from ich_edge.ingest.series_filter import CONTRAST_INSTEAD, JUDGED, NO_CONTRAST_WORDS, SEND_INSTEAD, names_contrast_agent
from ich_edge.runtime.completeness import MAX_SLICE_SPACING_MM, MIN_HEAD_EXTENT_MM

REPO = Path(__file__).resolve().parents[1]


def test_hu_numbers_are_the_plausibility_constants():
    hu = input_checks()["hu"]
    p = plausibility
    assert hu["air_max_hu"] == p.AIR_MAX_HU
    assert hu["tissue_range_hu"] == list(p.TISSUE_RANGE_HU)
    assert hu["bone_max_hu"] == p.BONE_MAX_HU
    assert hu["min_air_share"] == p.MIN_AIR_SHARE
    assert hu["min_tissue_share"] == p.MIN_TISSUE_SHARE
    assert hu["min_tissue_share_of_body"] == p.MIN_TISSUE_SHARE_OF_BODY
    assert hu["max_above_bone_share"] == p.MAX_ABOVE_BONE_SHARE
    assert hu["min_neighbour_correlation"] == p.MIN_NEIGHBOUR_CORRELATION
    assert hu["min_neighbour_pairs"] == p.MIN_NEIGHBOUR_PAIRS
    assert hu["neighbour_row_step"] == p.NEIGHBOUR_ROW_STEP


def test_series_orientation_pixel_and_coverage_numbers_are_the_python_ones():
    checks = input_checks()
    assert checks["orientation"]["max_orientation_diff_deg"] == MAX_ORIENTATION_DIFF_DEG
    series = checks["series"]
    assert series["drop_localizers"] is JUDGED.drop_localizers
    assert series["max_tilt_deg"] == JUDGED.max_tilt_deg
    assert series["max_axis_turn_deg"] == JUDGED.max_axis_turn_deg
    assert series["axial_orientation"] == list(AXIAL_ORIENTATION)
    assert series["min_slice_mm"] == JUDGED.min_slice_mm
    assert series["field_of_view_mm_range"] == list(JUDGED.field_of_view_mm_range)
    assert series["send_instead"] == SEND_INSTEAD
    assert series["drop_contrast"] is JUDGED.drop_contrast is True
    assert series["no_contrast_words"] == list(NO_CONTRAST_WORDS)
    assert series["contrast_instead"] == CONTRAST_INSTEAD
    assert checks["pixel_module"]["padding_forbidden_range_hu"] == list(plausibility.TISSUE_RANGE_HU)
    coverage = checks["coverage"]
    assert coverage["min_head_extent_mm"] == MIN_HEAD_EXTENT_MM
    assert coverage["gap_factor"] == GAP_FACTOR
    assert coverage["max_slice_spacing_mm"] == MAX_SLICE_SPACING_MM
    assert coverage["min_slices_from"] == "sequence.window_slices"


@pytest.mark.parametrize("value, named", [
    (None, False), ("", False), ("NONE", False), ("none", False), ("No contrast", False), ("Non-contrast", False),
    ("N/A", False), ("without", False), ("0", False), ("-", False),
    ("Omnipaque 350", True), ("IOHEXOL", True), ("Visipaque", True), ("IV", True), ("YES", True), ("Contrast", True),
])
def test_contrast_agent_words(value, named):
    """What the manifest's rule (2b) says, on the values scanners write: a word for 'none' is no agent."""
    assert names_contrast_agent(value) is named


def test_numbers_follow_the_constants_when_they_change(monkeypatch):
    """Built from the constants at call time, not copied: changing one changes the manifest."""
    monkeypatch.setattr(plausibility, "MIN_NEIGHBOUR_CORRELATION", 0.4)
    monkeypatch.setattr(manifest_module, "MIN_HEAD_EXTENT_MM", 120.0)
    checks = input_checks()
    assert checks["hu"]["min_neighbour_correlation"] == 0.4
    assert checks["coverage"]["min_head_extent_mm"] == 120.0


def test_every_rule_is_json_and_says_what_to_do():
    checks = input_checks()
    assert json.loads(json.dumps(checks)) == checks
    for key in ("orientation", "series", "pixel_module", "hu", "coverage"):
        rule = checks[key]["rule"]
        assert isinstance(rule, str) and len(rule) > 80, key
    assert "UNREADABLE" in checks["verdicts"] and "INCOMPLETE" in checks["verdicts"]
    assert "LOCALIZER" in checks["series"]["rule"] and "Patient ID" in checks["series"]["rule"]
    assert "Rescale Intercept" in checks["pixel_module"]["rule"] and "Pixel Padding" in checks["pixel_module"]["rule"]


def test_hu_rule_no_longer_assumes_a_missing_rescale():
    assert "when absent" not in RULES["hu"]
    assert "never assume" in RULES["hu"] and "input_checks.pixel_module" in RULES["hu"]


def test_build_manifest_carries_input_checks():
    """build_manifest on the committed model, with a stand-in for the loaded model object."""
    from types import SimpleNamespace

    assets = REPO / "android_demo_assets"
    committed = json.loads((assets / "manifest.json").read_text(encoding="utf-8"))
    model_file = assets / committed["model"]
    if not model_file.exists():
        pytest.skip("android_demo_assets/model.tflite is not in this checkout")
    seq = committed["sequence"]
    description = {
        "preprocessing": committed["preprocessing"]["from_model_description"],
        "sequence": {"window_slices": seq["window_slices"], "stride_slices": seq["stride_slices"]},
        "thresholds": committed["thresholds"],
    }
    model = SimpleNamespace(
        description=description,
        precision=committed["precision"],
        labels=committed["labels"],
        sequence=SimpleNamespace(window_slices=seq["window_slices"], stride_slices=seq["stride_slices"]),
        feature_dim=seq["feature_dim"],
    )
    built = build_manifest(model, model_file, sample={})
    assert built["input_checks"] == input_checks()
    assert built["preprocessing"]["hu"] == RULES["hu"]
