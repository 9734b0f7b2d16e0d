"""One meaning per option name across the verbs of ``ich-edge`` (docs/cli.md).

The test walks every Click command of the group and collects, per option name, the type and
help of each verb's option. A name that two verbs use must be in :data:`MEANINGS`, and every
use of a name in the table must have its type and say what its help pattern says: a second
meaning under an old name (``--labels`` as a CSV path in one verb and label names in
another) fails here; give the new meaning a new name instead.
"""

from __future__ import annotations

import re
from collections import defaultdict

import click
import pytest

from ich_edge.cli import COMMANDS, cli
from ich_edge.cli.conventions import CommaList

#: option name -> (its one meaning, its value type, a pattern its help matches in every verb).
#: The type is that of one value: a list option (``--threads 1,2``) and a single value
#: (``--threads 2``) of the same item type mean the same, as ``--model`` once or repeated does.
MEANINGS = {
    "--data": ("a prepared cache the verb reads", "path", r"cache"),
    "--test": ("a prepared cache of held-out studies to evaluate on", "path", r"held-out"),
    "--dicom": ("the DICOM input: a .dcm, a series folder or a folder of series", "path", r"DICOM|\.dcm"),
    "--model": ("the model the verb acts on", "path", r"model|\.tflite|RUN_DIR"),
    "--out": ("where the verb writes", "path", r"write|[Ff]older|RUN_DIR|QAT_DIR"),
    "--force": ("replace or start over an existing output", "flag", r"[Rr]eplace|[Oo]verwrite|[Ss]tart over"),
    "--json": ("print the JSON result on stdout", "flag", r"JSON"),
    "--seed": ("a random seed", "integer", r"[Ss]eed"),
    "--threads": ("interpreter thread count(s)", "integer", r"thread"),
    "--workers": ("worker processes", "integer", r"[Pp]rocesses"),
    "--epochs": ("training epochs", "integer", r"[Ee]pochs"),
    "--learning-rate": ("peak learning rate", "float", r"learning rate"),
    "--batch-size": ("windows per training step", "integer", r"Windows per step"),
    "--window-slices": ("slices per window", "integer", r"Slices per window"),
    "--studies": ("how many studies to write", "integer", r"Number of studies"),
    "--labels": ("which labels training uses: slice or study labels", "choice(auto,slice,study)", r"slice labels"),
    "--labels-csv": ("the CSV of slice or study labels", "path", r"CSV"),
    "--output-labels": ("the label names of the model's outputs, in order", "text", r"output classes"),
}


def value_type(option: click.Option) -> str:
    """``path``, ``integer``, ``flag``, ``choice(a,b)``...: the type of one value of ``option``."""
    if option.is_flag:
        return "flag"
    kind = option.type.item if isinstance(option.type, CommaList) else option.type
    if isinstance(kind, click.Choice):
        return f"choice({','.join(kind.choices)})"
    return "path" if isinstance(kind, click.Path) else kind.name  # a file, folder or either: a path


def option_uses(group: click.Group = cli) -> dict[str, list[tuple[str, str, str]]]:
    """Option name -> [(verb, value type, help)] over every command of ``group``."""
    uses = defaultdict(list)
    ctx = click.Context(group)
    for verb in group.list_commands(ctx):
        for param in group.get_command(ctx, verb).params:
            if isinstance(param, click.Option):
                for name in (*param.opts, *param.secondary_opts):
                    uses[name].append((verb, value_type(param), param.help or ""))
    return uses


def test_the_walk_sees_every_verb():
    verbs = {verb for uses in option_uses().values() for verb, _, _ in uses}
    assert verbs == set(COMMANDS)


def test_a_name_two_verbs_use_is_in_the_table():
    shared = {name: sorted(verb for verb, _, _ in uses) for name, uses in option_uses().items() if len(uses) > 1}
    missing = {name: verbs for name, verbs in shared.items() if name not in MEANINGS}
    assert not missing, f"options used by several verbs need one meaning in MEANINGS (or another name): {missing}"


@pytest.mark.parametrize("name", MEANINGS)
def test_each_option_name_has_one_meaning(name):
    meaning, kind, help_pattern = MEANINGS[name]
    uses = option_uses()[name]
    assert uses, f"{name} is in MEANINGS but no verb has it; drop it from the table"
    for verb, used_kind, text in uses:
        assert used_kind == kind, f"{verb} {name} takes {used_kind}, elsewhere {kind} ({meaning}); rename one of them"
        assert re.search(help_pattern, text), f"{verb} {name}: help {text!r} does not say {meaning!r} (/{help_pattern}/)"
