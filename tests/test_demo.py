"""The demo's plan (steps in pipeline order, reuse of finished steps), its README update, and (slow) that training learns."""

from __future__ import annotations

import json

import pytest

import demo  # scripts/demo.py (tests/conftest.py puts scripts/ on the path)


def test_steps_run_the_whole_pipeline_in_order(tmp_path):
    steps = demo._steps(tmp_path, tmp_path, train_studies=30, test_studies=10, epochs=None)
    verbs = [s.args[0] for s in steps]
    assert verbs == ["synth", "synth", "synth", "prepare", "prepare", "train", "qat", "convert", "parity", "bench", "assets"]
    parity = next(s for s in steps if s.name == "parity")
    # One parity run answers both questions for every precision: the validated float run is the
    # reference, the QAT_DIR the source of qat-int8; exit 1 and 4 leave a report the ship step reads.
    assert parity.args[parity.args.index("--reference") + 1] == str(tmp_path / "run")
    assert parity.args[parity.args.index("--converted-from") + 1] == str(tmp_path / "qat")
    assert parity.args.count("--model") == len(demo.PRECISIONS) and parity.allowed_exit_codes == (0, 1, 4)
    assets = next(s for s in steps if s.name == "assets")
    assert assets.args == ["assets"] and assets.make_args is not None  # decided from the parity report when it runs
    train = next(s for s in steps if s.name == "train")
    assert "--epochs" not in train.args  # the demo trains with ich-edge train's defaults
    assert not any(s.done() for s in steps)  # nothing finished yet in an empty folder
    with_epochs = next(s for s in demo._steps(tmp_path, tmp_path, 30, 10, epochs=3) if s.name == "train")
    assert with_epochs.args[-2:] == ["--epochs", "3"]


def test_a_finished_step_is_reused(tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(demo, "cli_main", lambda args: calls.append(args) or 1)
    (tmp_path / "synth_train").mkdir()
    (tmp_path / "synth_train" / "labels.csv").write_text("ID,Label\n")
    code = demo.run_demo(tmp_path, train_studies=2, test_studies=1)
    out = capsys.readouterr()
    assert "[1/11] synth (train, seed 1): done before, reusing its outputs" in out.out
    assert code == 1 and len(calls) == 1 and calls[0][:3] == ["synth", "--out", str(tmp_path / "synth_test")]
    assert "step 'synth (test, seed 2)' failed with exit code 1" in out.err


def test_step_times_are_recorded_and_kept_when_reused(tmp_path, capsys, monkeypatch):
    """Each step's seconds go to steps.json as it finishes; a resumed demo shows the reused step's recorded time."""
    calls = []
    monkeypatch.setattr(demo, "cli_main", lambda args: calls.append(args) or 0)
    assert demo.run_demo(tmp_path, 2, 1, stop_after="synth (test, seed 2)") == 0
    assert len(calls) == 2  # --stop-after: nothing after the named step runs
    timings = json.loads((tmp_path / demo.STEPS_FILE).read_text())
    assert list(timings) == ["synth (train, seed 1)", "synth (test, seed 2)"]
    assert all(t["status"] == "ok" and t["seconds"] >= 0 for t in timings.values())
    (tmp_path / "synth_train").mkdir()
    (tmp_path / "synth_train" / "labels.csv").write_text("ID,Label\n")
    timings["synth (train, seed 1)"]["seconds"] = 123.0
    (tmp_path / demo.STEPS_FILE).write_text(json.dumps(timings))
    capsys.readouterr()
    assert demo.run_demo(tmp_path, 2, 1, stop_after="synth (test, seed 2)") == 0
    out = capsys.readouterr().out
    assert "synth (train, seed 1)  reused       123 s" in out
    assert json.loads((tmp_path / demo.STEPS_FILE).read_text())["synth (train, seed 1)"]["seconds"] == 123.0
    assert demo.run_demo(tmp_path, 2, 1, stop_after="no such step") == 2


def test_update_readme_replaces_only_the_results_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold table\n<!-- results:end -->\noutro\n")
    demo.update_readme(readme, "new table")
    assert readme.read_text() == "intro\n<!-- results:start -->\n```\nnew table\n```\n<!-- results:end -->\noutro\n"
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no markers\n")
    demo.update_readme(plain, "new table")
    assert plain.read_text() == "no markers\n"


def test_the_demo_writes_only_its_folder_and_release_copies_into_the_checkout(tmp_path, monkeypatch):
    """make demo leaves the checkout alone (assets under demo_out/); make release-assets is the deliberate copy."""
    out, repo = tmp_path / "demo_out", tmp_path / "repo"
    steps = demo._steps(out, repo, train_studies=2, test_studies=1, epochs=None)
    for step in steps:
        for arg in step.args[1:]:
            assert not arg.startswith(str(repo)), (step.name, arg)
    monkeypatch.setattr(demo, "choose_shipped_model", lambda report, **kwargs: ({"path": "m.tflite", "precision": "fp32",
                                                                       "sha256": "0" * 64}, []))
    out.mkdir()
    assets_args = next(s for s in steps if s.name == "assets").make_args()
    assert assets_args[assets_args.index("--out") + 1] == str(out / demo.ASSETS_DIR)

    with pytest.raises(Exception, match="no finished demo"):
        demo.release(out, repo)
    (out / demo.ASSETS_DIR).mkdir()
    (out / demo.ASSETS_DIR / "manifest.json").write_text("{}")
    (out / "bench.json").write_text(json.dumps({"created_utc": "2026-12-02T19:00:00Z", "machine": {"host": "vm"}}))
    (out / demo.TABLE_FILE).write_text("the table\n")
    (repo / "benchmarks" / "results").mkdir(parents=True)
    (repo / demo.ASSETS_DIR).mkdir()
    (repo / demo.ASSETS_DIR / "stale.txt").write_text("old")
    (repo / "README.md").write_text("a\n<!-- results:start -->\nold\n<!-- results:end -->\nb\n")
    changed = demo.release(out, repo)
    assert sorted(p.name for p in (repo / demo.ASSETS_DIR).iterdir()) == ["manifest.json"]
    assert (repo / "benchmarks" / "results" / "bench_20261202T190000Z_vm.json").is_file()
    assert "```\nthe table\n```" in (repo / "README.md").read_text()
    assert len(changed) == 3


@pytest.mark.slow
def test_training_learns_well_above_the_trivial_baseline(tmp_path):
    """Demo-size data, the demo's training recipe: study AUC "any" on held-out studies far above the baseline.

    A model that stopped learning (a broken loss, labels misaligned with slices, a frozen
    encoder) scores near the trivial baseline or 0.5; the demo model scores ~0.98.
    """
    from ich_edge.cli import main

    for name, studies, seed in (("train", 300, "1"), ("test", 100, "2")):
        assert main(["synth", "--out", str(tmp_path / f"synth_{name}"), "--studies", str(studies), "--seed", seed]) == 0
        assert main(["prepare", "--dicom", str(tmp_path / f"synth_{name}" / "dicom"), "--labels-csv",
                     str(tmp_path / f"synth_{name}" / "labels.csv"), "--out", str(tmp_path / f"cache_{name}")]) == 0
    assert main(["train", "--data", str(tmp_path / "cache_train"), "--test", str(tmp_path / "cache_test"),
                 "--out", str(tmp_path / "run")]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    model_auc = report["test"]["model"]["study"]["auc"]["any"]
    baseline_auc = report["test"]["baseline"]["study"]["auc"]["any"]
    assert model_auc >= 0.9 and model_auc >= baseline_auc + 0.1, (model_auc, baseline_auc)
