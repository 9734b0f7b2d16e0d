"""``import --force`` replaces only a RUN_DIR that import wrote; a missing model file is exit 3 like every verb's."""

from __future__ import annotations

import pytest

from import_helpers import paper_like

from ich_edge.cli import main


def test_import_force_never_deletes_unrelated_files(tmp_path, capsys):
    paper_like().save(tmp_path / "paper.h5")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("two years of work")
    code = main(["import", "--model", str(tmp_path / "paper.h5"), "--out", str(mine), "--force"])
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1 and "did not write" in err, err
    assert (mine / "thesis.tex").read_text() == "two years of work"
    run = tmp_path / "run"
    assert main(["import", "--model", str(tmp_path / "paper.h5"), "--out", str(run)]) == 0
    assert (run / ".ich-edge-output.json").is_file()  # fileio.OUTPUT_MARKER
    assert main(["import", "--model", str(tmp_path / "paper.h5"), "--out", str(run), "--force"]) == 0  # its own output
    (run / "notes.txt").write_text("added by hand")  # a file import did not write, in import's own folder
    assert main(["import", "--model", str(tmp_path / "paper.h5"), "--out", str(run), "--force"]) == 3
    assert "notes.txt" in capsys.readouterr().err and (run / "notes.txt").read_text() == "added by hand"


@pytest.mark.training  # `ich-edge import` needs TensorFlow before it looks at the file
def test_import_of_a_missing_file_exits_3(tmp_path, capsys):
    code = main(["import", "--model", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1 and "does not exist" in err, err
    assert not (tmp_path / "run").exists()
