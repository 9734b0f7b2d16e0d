import click

from ich_edge.cli import COMMANDS, main


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


@click.command()
@click.pass_context
def command(ctx):
    """A verb that ends through ctx.exit(3), as parity does on failure."""
    ctx.exit(3)


def test_exit_code_of_ctx_exit_is_kept(monkeypatch):
    monkeypatch.setitem(COMMANDS, "exit-three", (__name__, "test only"))
    assert main(["exit-three"]) == 3
