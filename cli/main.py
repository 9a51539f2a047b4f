"""The `livedash` command."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from cli.commands import install
from cli.context import State, fail, handle_errors, state
from cli.errors import CliError, ExitCode
from cli.output import console
from cli.secrets import environment_secrets
from cli.settings import Settings
from domain.budget import BudgetError
from store.master_key import MasterKeyError

app = typer.Typer(
    name="livedash",
    help="LiveDash pipeline: chat-session CSV exports in, analysed and auditable sessions out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="LIVEDASH_DATABASE_URL",
            help="sqlite:///file.db (default: livedash.db here) or postgresql://user@host/db",
            show_envvar=True,
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option("--actor", help="Who is acting, recorded on resets (default: OS user)"),
    ] = None,
) -> None:
    environ = dict(os.environ)  # read once: settings and secrets both come from this snapshot
    try:
        settings = Settings.from_env(environ, database_url=database_url, actor=actor)
    except BudgetError as e:
        raise fail(CliError(f"LIVEDASH_AI_BUDGET: {e}", code=ExitCode.USAGE)) from None
    except MasterKeyError as e:
        raise fail(CliError(str(e), code=ExitCode.USAGE)) from None
    ctx.obj = State(settings, environment_secrets(environ))


@app.command()
@handle_errors
def init(ctx: typer.Context) -> None:
    """Create the event store and projection tables (safe to run again)."""
    with state(ctx).runtime(create=True) as rt:
        rt.runner.catch_up()
        console.print(f"[green]ready:[/] {rt.config.describe()}")
        if rt.app.data_keys is None:
            console.print(
                "[yellow]personal data is stored unsealed[/] (no LIVEDASH_MASTER_KEY): "
                "`livedash erase` cannot erase it"
            )
        else:
            console.print("personal data is sealed with per-session keys")


def main() -> None:
    install(app, sys.argv[1:])
    app()


if __name__ == "__main__":
    main()
