"""`livedash retry` and `livedash projections status|rebuild`."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cli.cmd_verify import verify_command
from cli.context import backend, handle_errors, state
from cli.errors import CliError
from cli.output import console, fmt_age, fmt_time, print_json
from cli.runtime import Runtime, all_projections, events_table
from domain.stages import Stage
from processors.service.retry import RetryRequest
from processors.service.retry import retry as retry_sessions
from projections.notify import PgListener
from projections.shadow import swap_in
from projections.store import ANALYTICS, upgrade_money

projections_app = typer.Typer(help="Inspect and rebuild the projections.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("retry")(retry)


@handle_errors
def retry(
    ctx: typer.Context,
    sessions: Annotated[
        list[str] | None, typer.Argument(help="Session ids (internal or external)")
    ] = None,
    stage: Annotated[str | None, typer.Option("--stage", help="Stage to reset")] = None,
    all_failed: Annotated[
        bool, typer.Option("--all-failed", help="Every FAILED session of --stage")
    ] = False,
    company: Annotated[str | None, typer.Option("--company")] = None,
    reason: Annotated[
        str, typer.Option("--reason", help="Recorded with the reset")
    ] = "manual retry",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Send failed (or skipped) stages back to PENDING; history keeps every earlier attempt."""
    settings = state(ctx).settings
    request = RetryRequest(
        sessions=sessions or [],
        stage=Stage.parse(stage) if stage else None,
        all_failed=all_failed,
        company=company,
        reason=reason,
    )
    request.check()
    with state(ctx).runtime() as rt:
        result = retry_sessions(backend(rt), request, settings.actor)
    if json_out:
        print_json(result.model_dump())
    else:
        console.print(
            f"reset {len(result.reset)} session(s) to PENDING "
            f"(by {escape(result.actor)}: {escape(result.reason)})"
        )
        for r in result.refused:
            console.print(f"  [yellow]not reset[/] {escape(r.external_id)}: {escape(r.reason)}")
    if result.refused and not result.reset:
        raise typer.Exit(1)


@projections_app.command("status")
@handle_errors
def projections_status(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Each projection's position and lag (events and seconds behind the log)."""
    with state(ctx).runtime() as rt:
        lags = rt.runner.lag()
    if json_out:
        print_json([lag.__dict__ for lag in lags])
        return
    table = Table(title="Projections")
    for col in ("name", "position", "log head", "events behind", "behind", "applied", "updated"):
        table.add_column(col)
    for lag in lags:
        table.add_row(
            lag.name,
            str(lag.position),
            str(lag.head),
            str(lag.events_behind),
            fmt_age(lag.seconds_behind),
            str(lag.events_applied),
            fmt_time(lag.updated_at),
        )
    console.print(table)


@projections_app.command("catch-up")
@handle_errors
def projections_catch_up(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Projection name (default: all)")] = None,
    page_size: Annotated[int, typer.Option("--page-size", help="Events per transaction")] = 2000,
) -> None:
    """Apply the events a projection has not seen yet (the daemon does this continuously)."""
    with state(ctx).runtime() as rt:
        names = _projection_names(rt, name)
        rt.runner.page_size = page_size
        for n in names:
            count = rt.runner.catch_up([n])
            console.print(f"{n}: {count} events applied")


def _projection_names(rt: Runtime, name: str | None) -> list[str]:
    names = [name] if name else list(rt.runner.projections)
    unknown = [n for n in names if n not in rt.runner.projections]
    if unknown:
        raise CliError(
            f"unknown projection {unknown[0]!r}",
            hint=f"one of: {', '.join(rt.runner.projections)}",
        )
    return names


@projections_app.command("follow")
@handle_errors
def projections_follow(
    ctx: typer.Context,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", help="Seconds between polls (always polled)")
    ] = 2.0,
) -> None:
    """Keep the projections caught up with the live log until SIGINT/SIGTERM."""
    stop, wake = threading.Event(), threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()
        wake.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
    with state(ctx).runtime() as rt:
        listener = None
        if rt.config.kind == "postgres":
            listener = PgListener(rt.config, events_table(rt.config), wake.set).start()
        console.print(f"following the event log of {rt.config.describe()} (Ctrl-C stops)")
        try:
            rt.runner.follow(stop, wake, poll_interval)
        finally:
            if listener:
                listener.stop()


@projections_app.command("rebuild")
@handle_errors
def projections_rebuild(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Projection name (default: all)")] = None,
    swap: Annotated[
        bool,
        typer.Option(
            "--swap",
            help="Build beside the live tables and swap them in at the end, in one "
            "transaction: reports never see a half-built table, daemons may keep running",
        ),
    ] = False,
) -> None:
    """Replay the whole event log into a projection (emptied first, unless --swap)."""
    with state(ctx).runtime() as rt:
        if name in (None, ANALYTICS) and upgrade_money(rt.engine):
            console.print("analytics: tables recreated with exact money columns")
        names = _projection_names(rt, name)
        if swap:
            fresh = [p for p in all_projections() if p.name in names]
            for n, count in swap_in(rt.runner, fresh).items():
                console.print(f"rebuilt {n} beside the live tables and swapped in: {count} events")
            return
        for n in names:
            count = rt.runner.rebuild(n)
            console.print(f"rebuilt {n}: {count} events applied")


projections_app.command("verify")(verify_command)
