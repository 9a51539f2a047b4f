"""The `livedash` command."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from cli import (
    cmd_analytics,
    cmd_audit,
    cmd_company,
    cmd_demo,
    cmd_export,
    cmd_import,
    cmd_migrate,
    cmd_ops,
    cmd_reports,
    cmd_run,
    cmd_serve,
    cmd_workers,
)
from cli.cmd_events import events as events_command
from cli.context import State, handle_errors, state
from cli.output import console
from cli.secrets import environment_secrets
from cli.settings import Settings

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
    settings = Settings.from_env(environ, database_url=database_url, actor=actor)
    ctx.obj = State(settings, environment_secrets(environ))


@app.command()
@handle_errors
def init(ctx: typer.Context) -> None:
    """Create the event store and projection tables (safe to run again)."""
    with state(ctx).runtime(create=True) as rt:
        rt.runner.catch_up()
        console.print(f"[green]ready:[/] {rt.config.describe()}")


app.add_typer(cmd_company.app, name="company")
app.add_typer(cmd_ops.projections_app, name="projections")
app.add_typer(cmd_audit.app, name="audit")
cmd_import.register(app)
cmd_reports.register(app)
cmd_ops.register(app)
cmd_run.register(app)
cmd_demo.register(app)
cmd_analytics.register(app)
cmd_migrate.register(app)
cmd_workers.register(app)
cmd_serve.register(app)
app.command("export")(cmd_export.export)
app.command("events")(events_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
