"""Which module serves each command, so a run of one command imports only its own module.

Importing every command module costs a CLI start about a fifth of its time (the daemon, the
legacy migration, the AI client, the web app); scripts and tests start `livedash` thousands of
times. `--help`, no command or an unknown one installs them all, so help and errors are as
before. `tests/test_cli_commands.py` checks this table against what the modules register.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

import typer

Installer = Callable[[typer.Typer], None]


def _register(module: str) -> Installer:
    """A module with ``register(app)``."""

    def install(app: typer.Typer) -> None:
        importlib.import_module(module).register(app)

    return install


def _group(module: str, attribute: str, name: str) -> Installer:
    """A module whose Typer ``attribute`` is the ``name`` command group."""

    def install(app: typer.Typer) -> None:
        app.add_typer(getattr(importlib.import_module(module), attribute), name=name)

    return install


def _single(module: str, function: str, name: str) -> Installer:
    def install(app: typer.Typer) -> None:
        app.command(name)(getattr(importlib.import_module(module), function))

    return install


_reports = _register("cli.cmd_reports")
_import = _register("cli.cmd_import")
_analytics = _register("cli.cmd_analytics")

INSTALLERS: dict[str, Installer] = {
    "import": _import,
    "imports": _import,
    "status": _reports,
    "sessions": _reports,
    "failed": _reports,
    "history": _reports,
    "retry": _register("cli.cmd_ops"),
    "run": _register("cli.cmd_run"),
    "demo": _register("cli.cmd_demo"),
    "costs": _analytics,
    "questions": _analytics,
    "report": _analytics,
    "reprocess": _analytics,
    "batches": _register("cli.cmd_batches"),
    "migrate-legacy": _register("cli.cmd_migrate"),
    "workers": _register("cli.cmd_workers"),
    "serve": _register("cli.cmd_serve"),
    "export": _single("cli.cmd_export", "export", "export"),
    "events": _single("cli.cmd_events", "events", "events"),
    "erase": _single("cli.cmd_erase", "erase", "erase"),
    "company": _group("cli.cmd_company", "app", "company"),
    "projections": _group("cli.cmd_ops", "projections_app", "projections"),
    "audit": _group("cli.cmd_audit", "app", "audit"),
    "stage": _group("cli.cmd_stage", "app", "stage"),
}
"""Command word -> what installs it (in help order). Several words may share an installer."""

GLOBAL_OPTIONS_WITH_VALUE = frozenset({"--database-url", "--actor"})


def command_word(argv: Sequence[str]) -> str | None:
    """The command a command line asks for: the first word after the global options."""
    words = iter(argv)
    for word in words:
        if word in GLOBAL_OPTIONS_WITH_VALUE:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def install(app: typer.Typer, argv: Sequence[str]) -> None:
    """Only the command's own module for a known command; every module otherwise."""
    word = command_word(argv)
    if word == "init":
        return  # defined beside the app
    chosen = [INSTALLERS[word]] if word in INSTALLERS else INSTALLERS.values()
    done: list[Installer] = []
    for installer in chosen:
        if installer not in done:
            installer(app)
            done.append(installer)
