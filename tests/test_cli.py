from ich_edge.cli import main


def test_help_lists_verbs(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Commands" in out


def test_unknown_command_fails(capsys):
    assert main(["no-such-verb"]) != 0
    assert "No such command" in capsys.readouterr().err


def test_version(capsys):
    assert main(["--version"]) == 0
    assert "ich-edge" in capsys.readouterr().out
