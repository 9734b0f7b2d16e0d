"""Evidence travels with the verdict: a parity PASS on lowered minimums is refused by assets unless allowed, and stated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ich_edge import LABELS
from ich_edge.assets.build import AssetsConfig, write_assets
from ich_edge.assets.sample import SampleConfig
from ich_edge.cli import main
from ich_edge.errors import InsufficientEvidenceError
from ich_edge.evidence import DEFAULT_MIN_POSITIVE_STUDIES, DEFAULT_MIN_STUDIES, below_defaults
from test_assets import write_parity_report
from tiny_app_model import tiny_model_bytes

SMALL_SAMPLE = SampleConfig(matrix_px=64, min_slices=6, max_slices=8)
#: what `parity --min-studies 8 --min-positive-studies 1 --gated-labels any` records
WEAK = {"min_studies": 8, "min_positive_studies": 1, "gated_labels": ["any"], "studies": 8}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "cnn_lstm_qat-int8.tflite"
    path.write_bytes(tiny_model_bytes(size_px=16, window=4, stride=2))
    return path


def test_below_defaults_names_each_shortfall():
    assert below_defaults({"min_studies": 20, "min_positive_studies": 5, "gated_labels": list(LABELS)}) == []
    assert below_defaults({"min_studies": 50, "min_positive_studies": 9, "gated_labels": list(LABELS)}) == []
    short = below_defaults(WEAK)
    assert short[:2] == ["min studies 8 < 20", "min positive studies 1 < 5"] and short[2].startswith("labels not gated: epidural")
    assert below_defaults(None) == ["the parity report records no evidence minimums"]
    assert below_defaults({"min_studies": 20, "min_positive_studies": 5, "gated_labels": ["any"]}, labels=["any"]) == []


def test_the_parity_report_records_the_minimums_used():
    from ich_edge.training.parity.gates import EvidenceRule, assess_evidence

    y = np.zeros((8, len(LABELS)), np.int64)
    y[:2] = 1
    weak = assess_evidence(EvidenceRule(8, 1, ("any",)), y)
    assert (weak["min_studies"], weak["min_positive_studies"], weak["gated_labels"]) == (8, 1, ["any"])
    assert weak["defaults"] == {"min_studies": DEFAULT_MIN_STUDIES, "min_positive_studies": DEFAULT_MIN_POSITIVE_STUDIES,
                                "gated_labels": list(LABELS)}
    assert weak["below_defaults"] == below_defaults(WEAK) and weak["sufficient"]  # PASS-able, but weak
    assert assess_evidence(EvidenceRule(), y)["below_defaults"] == []


def test_assets_refuses_a_pass_on_weak_evidence_unless_allowed(model_path, tmp_path, capsys):
    parity = write_parity_report(tmp_path / "parity", model_path, evidence=WEAK)
    out = tmp_path / "assets"
    args = ["assets", "--model", str(model_path), "--parity", str(parity), "--out", str(out), "--sample-seed", "5"]
    assert main(args) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "min studies 8 < 20" in err and "--allow-weak-evidence" in err, err
    assert not out.exists()
    with pytest.raises(InsufficientEvidenceError):
        write_assets(AssetsConfig(model_path=model_path, out_dir=out, parity_report=parity, sample=SMALL_SAMPLE))


def test_allowed_weak_evidence_is_stated_in_the_manifest_and_readme(model_path, tmp_path):
    parity = write_parity_report(tmp_path / "parity", model_path, evidence=WEAK)
    out = tmp_path / "assets"
    result = write_assets(AssetsConfig(model_path=model_path, out_dir=out, parity_report=parity, sample=SMALL_SAMPLE,
                                       sample_seed=5, allow_weak_evidence=True))
    evidence = json.loads((out / "manifest.json").read_text())["parity"]["evidence"]
    assert (evidence["min_studies"], evidence["min_positive_studies"], evidence["gated_labels"]) == (8, 1, ["any"])
    assert evidence["defaults"]["min_studies"] == 20 and evidence["below_defaults"] == below_defaults(WEAK)
    readme = (out / "README.md").read_text()
    assert "weaker evidence than the defaults" in readme and "8 studies, 1 positive studies" in readme
    assert any("weaker evidence" in note for note in result.notes)


def test_default_evidence_ships_without_the_flag_and_says_nothing_extra(model_path, tmp_path):
    parity = write_parity_report(tmp_path / "parity", model_path)
    out = tmp_path / "assets"
    write_assets(AssetsConfig(model_path=model_path, out_dir=out, parity_report=parity, sample=SMALL_SAMPLE, sample_seed=5))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parity"]["evidence"]["below_defaults"] == [] and manifest["parity"]["evidence"]["min_studies"] == 20
    assert "weaker evidence" not in (out / "README.md").read_text()
