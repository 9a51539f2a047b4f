"""`livedash retry` and `livedash projections status|rebuild`."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cli.cmd_reports import resolve_session
from cli.context import catch_up, handle_errors, optional_company, state
from cli.errors import CliError
from cli.output import console, fmt_age, fmt_time, print_json
from cli.runtime import Runtime, events_table
from domain.errors import DomainError
from domain.session import Session
from domain.stages import STAGE_ORDER, Stage, Status
from processors.clock import utc_now
from projections.notify import PgListener
from projections.queries import failed_session_ids
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
    stage_v = Stage.parse(stage) if stage else None
    if all_failed and stage_v is None:
        raise CliError(
            "--all-failed needs --stage", hint="e.g. --stage TRANSCRIPT_FETCH --all-failed"
        )
    if not sessions and not all_failed:
        raise CliError("name sessions to retry, or use --stage S --all-failed")
    with state(ctx).runtime() as rt:
        catch_up(rt)
        if all_failed:
            assert stage_v is not None
            info = optional_company(rt, company)
            with rt.engine.connect() as conn:
                ids = failed_session_ids(conn, stage_v, info.company_id if info else None)
        else:
            ids = [resolve_session(rt, key, company)["session_id"] for key in sessions or []]
        now = utc_now()
        reset: list[Session] = []
        refused: list[dict[str, str]] = []
        for session in rt.app.get_sessions(ids):
            target = stage_v or _first_resettable(session)
            try:
                if target is None:
                    raise DomainError("no FAILED or SKIPPED stage to retry")
                session.reset_stage(target, reason, settings.actor, now)
                reset.append(session)
            except DomainError as e:
                refused.append(
                    {
                        "session_id": str(session.id),
                        "external_id": session.external_id,
                        "reason": str(e),
                    }
                )
        for i in range(0, len(reset), 500):
            rt.app.save_batch(reset[i : i + 500])
        catch_up(rt)
    result = {
        "reset": [{"session_id": str(s.id), "external_id": s.external_id} for s in reset],
        "refused": refused,
        "actor": settings.actor,
        "reason": reason,
    }
    if json_out:
        print_json(result)
    else:
        console.print(
            f"reset {len(reset)} session(s) to PENDING "
            f"(by {escape(settings.actor)}: {escape(reason)})"
        )
        for r in refused:
            console.print(
                f"  [yellow]not reset[/] {escape(r['external_id'])}: {escape(r['reason'])}"
            )
    if refused and not reset:
        raise typer.Exit(1)


def _first_resettable(session: Session) -> Stage | None:
    for stage in STAGE_ORDER[1:]:
        if session.stages[stage].status in (Status.FAILED, Status.SKIPPED):
            return stage
    return None


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
) -> None:
    """Empty a projection and replay the whole event log into it."""
    with state(ctx).runtime() as rt:
        if name in (None, ANALYTICS) and upgrade_money(rt.engine):
            console.print("analytics: tables recreated with exact money columns")
        for n in _projection_names(rt, name):
            count = rt.runner.rebuild(n)
            console.print(f"rebuilt {n}: {count} events applied")
