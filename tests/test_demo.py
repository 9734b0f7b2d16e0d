"""The demo's plan (steps in pipeline order, reuse of finished steps) and its README update."""

from __future__ import annotations

from ich_edge import demo


def test_steps_run_the_whole_pipeline_in_order(tmp_path):
    steps = demo._steps(tmp_path, tmp_path, train_studies=30, test_studies=10, epochs=None)
    verbs = [s.args[0] for s in steps]
    assert verbs == ["synth", "synth", "synth", "prepare", "prepare", "train", "qat", "convert", "parity", "parity", "bench", "assets"]
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
    assert "[1/12] synth (train, seed 1): done before, reusing its outputs" in out.out
    assert code == 1 and len(calls) == 1 and calls[0][:3] == ["synth", "--out", str(tmp_path / "synth_test")]
    assert "step 'synth (test, seed 2)' failed with exit code 1" in out.err


def test_update_readme_replaces_only_the_results_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold table\n<!-- results:end -->\noutro\n")
    demo.update_readme(readme, "new table")
    assert readme.read_text() == "intro\n<!-- results:start -->\n```\nnew table\n```\n<!-- results:end -->\noutro\n"
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no markers\n")
    demo.update_readme(plain, "new table")
    assert plain.read_text() == "no markers\n"
