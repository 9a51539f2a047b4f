"""The lazy command table (`cli/commands.py`) serves every command, and only its own module."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from cli.commands import INSTALLERS, command_word, install
from tests.conftest import LIVEDASH, REPO


def _names(app: typer.Typer) -> set[str]:
    commands = {
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    }
    return commands | {g.name or "" for g in app.registered_groups}


def test_all_modules_register_exactly_the_table() -> None:
    app = typer.Typer()
    install(app, ["--help"])
    assert _names(app) == set(INSTALLERS)


@pytest.mark.parametrize("word", sorted(INSTALLERS))
def test_each_command_is_installed_by_its_own_entry(word: str) -> None:
    app = typer.Typer()
    install(app, ["--database-url", "sqlite:///x.db", word, "--json"])
    assert word in _names(app)


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        ([], None),
        (["--help"], None),
        (["status", "--json"], "status"),
        (["--database-url", "postgresql://h/db", "company", "list"], "company"),
        (["--actor", "ops", "--database-url=sqlite:///a.db", "retry", "x"], "retry"),
        (["--database-url", "status"], None),  # the value of an option is not the command
    ],
)
def test_the_command_word_skips_global_options_and_their_values(
    argv: list[str], word: str | None
) -> None:
    assert command_word(argv) == word


def test_help_lists_every_command_and_one_command_starts_alone() -> None:
    env = {"PYTHONPATH": str(REPO), "COLUMNS": "200", "PATH": "/usr/bin:/bin"}
    help_text = subprocess.run(
        [*LIVEDASH, "--help"], capture_output=True, text=True, env=env, check=True, timeout=120
    ).stdout
    for word in INSTALLERS:
        assert word in help_text
    probe = (
        "import sys; sys.argv = ['livedash', 'status', '--help']\n"
        "import cli.main\n"
        "try:\n    cli.main.main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('cli.cmd_')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True,
        timeout=120,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    assert loaded == "['cli.cmd_reports']"
