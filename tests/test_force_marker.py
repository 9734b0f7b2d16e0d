"""``--force`` replaces only what the verb wrote: a marker names the verb; other folders and files are never deleted."""

from __future__ import annotations

import json

import pytest

from ich_edge.cli import main
from ich_edge.errors import OutputExistsError
from ich_edge.fileio import OUTPUT_MARKER, mark_output, output_owner, refuse_existing, replace_dir


def _user_folder(path):
    path.mkdir()
    (path / "thesis.tex").write_text("mine")
    return path


def test_force_refuses_a_folder_without_the_verbs_marker(tmp_path):
    mine = _user_folder(tmp_path / "mine")
    with pytest.raises(OutputExistsError, match="did not write"):
        refuse_existing(mine, True, "assets --out")
    mark_output(mine, "prepare")
    assert output_owner(mine) == "prepare"
    with pytest.raises(OutputExistsError, match="written by `ich-edge prepare`, not assets"):
        refuse_existing(mine, True, "assets --out")
    with pytest.raises(OutputExistsError, match="thesis.tex, which prepare did not write"):
        refuse_existing(mine, True, "prepare --out", written=("series",))
    refuse_existing(mine, True, "prepare --out")  # marked by prepare, no list of names: its own
    refuse_existing(tmp_path / "new", False, "assets --out")  # absent: nothing to refuse
    (tmp_path / "empty").mkdir()
    refuse_existing(tmp_path / "empty", False, "assets --out")


def test_a_folder_from_before_markers_holding_only_the_verbs_names_may_be_replaced(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "README.md").write_text("old assets")
    refuse_existing(old, True, "assets --out", written=("README.md", "model.tflite"))
    (old / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="notes.txt"):
        refuse_existing(old, True, "assets --out", written=("README.md", "model.tflite"))


def test_replace_dir_marks_its_output_and_never_replaces_a_foreign_folder(tmp_path):
    mine = _user_folder(tmp_path / "target")
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "model.keras").write_text("new")
    with pytest.raises(OutputExistsError, match="did not write"):
        replace_dir(staging, mine, verb="import")
    assert (mine / "thesis.tex").read_text() == "mine" and (staging / "model.keras").is_file()
    out = tmp_path / "out"
    replace_dir(staging, out, verb="import")
    assert output_owner(out) == "import" and json.loads((out / OUTPUT_MARKER).read_text())["verb"] == "import"


def test_prepare_refuses_a_folder_of_user_files_with_and_without_force(tmp_path, capsys):
    from ich_edge.synth import SynthConfig, write_synth_set

    synth = tmp_path / "synth"
    write_synth_set(SynthConfig(studies=1, seed=1, matrix_px=32, slices_min=4, slices_max=4, workers=1), synth)
    mine = _user_folder(tmp_path / "mine")
    prepare = ["prepare", "--dicom", str(synth / "dicom"), "--out", str(mine), "--workers", "1", "--input-size-px", "16"]
    assert main(prepare) == 3  # not a cache: nothing written into it
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "prepare did not write" in err, err
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    assert main([*prepare, "--force"]) == 3  # and never deleted
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    capsys.readouterr()

    cache = tmp_path / "cache"
    prepare[prepare.index(str(mine))] = str(cache)
    assert main(prepare) == 0 and output_owner(cache) == "prepare"
    (cache / "notes.txt").write_text("results of a week")  # the user's file, inside the cache
    assert main([*prepare, "--force"]) == 3
    assert "notes.txt" in capsys.readouterr().err and (cache / "notes.txt").is_file()
    (cache / "notes.txt").unlink()
    assert main([*prepare, "--force"]) == 0  # its own cache: emptied and prepared again
    assert output_owner(cache) == "prepare"


def test_parity_and_train_outputs_carry_the_marker(tmp_path):
    from ich_edge.training.parity.report import write_outputs

    report = {"verdict": "PASS", "models": [], "notes": []}
    try:
        write_outputs(report, {}, tmp_path / "parity", None)
    except Exception:  # the markdown/plots need a full report; the marker is written first
        pass
    assert output_owner(tmp_path / "parity") == "parity"


def test_train_force_starts_over_only_in_a_train_run(tmp_path):
    from ich_edge.training.train import _refuse_other_output

    mine = _user_folder(tmp_path / "mine")
    with pytest.raises(OutputExistsError, match="did not write"):
        _refuse_other_output(mine)
    old_run = tmp_path / "old_run"
    old_run.mkdir()
    (old_run / "config.json").write_text("{}")  # a RUN_DIR from before markers
    _refuse_other_output(old_run)
    mark_output(old_run, "import")
    with pytest.raises(OutputExistsError, match="written by `ich-edge import`, not train"):
        _refuse_other_output(old_run)
    run = tmp_path / "run"
    run.mkdir()
    mark_output(run, "train")
    _refuse_other_output(run)
    _refuse_other_output(tmp_path / "new")
