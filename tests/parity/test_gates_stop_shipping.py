"""Real parity reports stop shipping: ``ich-edge assets`` and the demo's ship decision read them by sha256."""

from __future__ import annotations

import json

import pytest

import demo  # scripts/demo.py (tests/conftest.py puts scripts/ on the path)
from ich_edge.assets.build import AssetsConfig, write_assets
from ich_edge.assets.sample import SampleConfig
from ich_edge.cli import main
from ich_edge.errors import GateFailedError

SMALL_SAMPLE = SampleConfig(matrix_px=64, min_slices=6, max_slices=8)


def test_assets_refuse_a_model_whose_parity_failed_or_is_missing(converted, parity_reports, tmp_path, capsys):
    out = tmp_path / "assets"
    code = main(["assets", "--model", str(converted["bad_fp32"]), "--parity", str(parity_reports["fail"]), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "is not shipped: parity verdict FAIL" in err and "subdural" in err
    assert not out.exists()
    code = main(["assets", "--model", str(converted["bad_fp32"]), "--out", str(out)])
    assert code == 1 and "no parity report was given (--parity)" in capsys.readouterr().err
    # A report in which this exact file does not appear (another file passed): refused too.
    code = main(["assets", "--model", str(converted["bad_fp32"]), "--parity", str(parity_reports["pass"]), "--out", str(out)])
    assert code == 1 and "holds no result for this file (sha256" in capsys.readouterr().err
    assert not out.exists()


def test_assets_ship_a_passing_model_and_say_so_when_parity_is_overridden(converted, parity_reports, tmp_path):
    passing = write_assets(AssetsConfig(converted["fp32"], tmp_path / "ok", parity_report=parity_reports["pass"],
                                        sample=SMALL_SAMPLE))
    assert passing.manifest["parity"]["passed"] is True and passing.manifest["parity"]["deployment"] == "PASS"
    assert "this file passed `ich-edge parity`" in (tmp_path / "ok" / "README.md").read_text()
    assert not any("parity" in note for note in passing.notes)

    forced = write_assets(AssetsConfig(converted["bad_fp32"], tmp_path / "forced", parity_report=parity_reports["fail"],
                                       allow_failed_parity=True, sample=SMALL_SAMPLE))
    manifest = json.loads((tmp_path / "forced" / "manifest.json").read_text())
    assert manifest["parity"]["passed"] is False and manifest["parity"]["allowed_failed_parity"] is True
    assert manifest["parity"]["verdict"] == "FAIL" and manifest["parity"]["deployment"] == "FAIL"
    assert "subdural" in manifest["parity"]["problem"]
    assert any("without a passing parity report" in note for note in forced.notes)
    assert "shipped WITHOUT a passing parity report (--allow-failed-parity)" in (tmp_path / "forced" / "README.md").read_text()


def test_the_demo_ships_nothing_when_no_candidate_passes(parity_reports):
    with pytest.raises(GateFailedError, match=r"no model passed parity(.|\n)*not shipping fp32: parity FAIL(.|\n)*subdural"):
        demo.choose_shipped_model(parity_reports["fail"])


def test_the_demo_falls_back_to_the_next_precision_that_passes(parity_reports, converted):
    entry, lines = demo.choose_shipped_model(parity_reports["mixed"], preference=("fp16", "fp32"))
    assert entry["path"] == str(converted["fp32"]) and entry["verdict"] == "PASS"
    assert lines[0].startswith("not shipping fp16: parity FAIL: cnn_lstm_fp16.tflite (fp16) deployment:")
    assert lines[1].startswith("shipping fp32")


def test_the_demo_stops_before_assets_when_the_shipped_model_fails(parity_reports, tmp_path, capsys, monkeypatch):
    """run_demo with only its assets step left, on a real failing report: exit 1, no assets call, the reason printed."""
    calls = []
    assets_dir = tmp_path / "android_demo_assets"
    step = demo.Step("assets", [], lambda: False,
                     make_args=lambda: demo._assets_args(tmp_path, parity_reports["fail"], assets_dir))
    monkeypatch.setattr(demo, "_steps", lambda *args: [step])
    monkeypatch.setattr(demo, "cli_main", lambda args: calls.append(args) or 0)
    code = demo.run_demo(tmp_path, train_studies=1, test_studies=1)
    err = capsys.readouterr().err
    assert code == 1 and calls == []
    assert "demo stopped before 'assets': no model passed parity" in err and "subdural" in err
    assert not assets_dir.exists() and not (tmp_path / "assets.done").exists()



def test_the_demo_ships_the_next_passing_file_when_assets_refuses_one(tmp_path, monkeypatch, capsys):
    """assets exit 1 (refused for apps) on the first choice: the demo records the file's sha256 and runs assets on
    the next file that passed parity; when that is refused too, nothing is left and the demo stops with exit 1."""
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"models": [
        {"precision": p, "verdict": "PASS", "path": f"{p}.tflite", "file": f"{p}.tflite", "sha256": p * 16}
        for p in ("qat-int8", "fp16")]}))
    step = demo.Step("assets", [], lambda: False, make_args=lambda: demo._assets_args(tmp_path, report, tmp_path / "a"))
    monkeypatch.setattr(demo, "_steps", lambda *args: [step])
    import summary  # scripts/summary.py: the table after the steps (no parity or bench here)

    monkeypatch.setattr(summary, "summary_table", lambda *a, **k: "")
    calls = []
    monkeypatch.setattr(demo, "cli_main", lambda args: calls.append(args[args.index("--model") + 1]) or (1 if len(calls) == 1 else 0))
    assert demo.run_demo(tmp_path, train_studies=1, test_studies=1) == 0
    assert calls == ["qat-int8.tflite", "fp16.tflite"]
    shipped = json.loads((tmp_path / demo.SHIPPED_FILE).read_text())
    assert shipped["precision"] == "fp16" and "refused it for apps" in shipped["why"][0]
    assert list(json.loads((tmp_path / demo.REFUSED_FILE).read_text())) == ["qat-int8" * 16]

    calls.clear()
    (tmp_path / demo.REFUSED_FILE).unlink()
    monkeypatch.setattr(demo, "cli_main", lambda args: calls.append(args) or 1)  # every file refused
    assert demo.run_demo(tmp_path, train_studies=1, test_studies=1) == 1
    assert len(calls) == 2 and "no model passed parity" in capsys.readouterr().err
