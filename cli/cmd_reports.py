"""`livedash status | sessions | failed | history`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.markup import escape
from rich.table import Table

from cli.context import catch_up, handle_errors, optional_company, state
from cli.errors import CliError, ExitCode
from cli.output import console, fmt_age, fmt_time, print_json, styled_status
from cli.runtime import Runtime
from domain.history import describe
from domain.stages import STAGE_ORDER, STATUSES, Stage, Status
from projections.models import StatusReport
from projections.queries import failed as failed_query
from projections.queries import find_sessions, list_sessions, status_report


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("sessions")(sessions)
    app.command("failed")(failed)
    app.command("history")(history)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
CompanyOpt = Annotated[str | None, typer.Option("--company", help="Only this company")]


@handle_errors
def status(ctx: typer.Context, company: CompanyOpt = None, json_out: JsonOpt = False) -> None:
    """Where every session is: counts per stage and status, what needs work, what failed."""
    with state(ctx).runtime() as rt:
        catch_up(rt)
        info = optional_company(rt, company)
        with rt.engine.connect() as conn:
            report = status_report(
                conn, info.company_id if info else None, info.name if info else None
            )
    if json_out:
        print_json(report)
    else:
        _print_status(report)


def _print_status(r: StatusReport) -> None:
    title = f"Pipeline status{f' — {r.company}' if r.company else ''}"
    console.print(f"[bold]{title}[/]   total sessions: [bold]{r.total_sessions}[/]")
    table = Table()
    table.add_column("stage")
    for s in STATUSES:
        table.add_column(styled_status(s.value), justify="right")
    for stage in STAGE_ORDER:
        counts = r.stages[stage.value]
        table.add_row(stage.value, *(str(counts[s.value]) for s in STATUSES))
    console.print(table)
    needs = [
        f"  • {stage}: {n.pending} pending, {n.failed_retrying} retrying, {n.failed_dead} failed"
        for stage, n in r.needs_processing.items()
        if n.pending or n.failed_retrying or n.failed_dead
    ]
    if needs:
        console.print("[bold]What needs processing[/]")
        console.print("\n".join(needs))
    if r.oldest_pending:
        o = r.oldest_pending
        console.print(
            f"Oldest pending: {o.stage} of {escape(o.external_id)}, "
            f"waiting {fmt_age(o.age_seconds)}"
        )
    for w in r.waiting_companies:
        console.print(
            f"[yellow]waiting:[/] {escape(w.company)}: {w.waiting_sessions} sessions — "
            f"{escape(w.reason)}"
        )
    for problem in r.import_warnings:
        console.print(f"[yellow]import:[/] {escape(problem.message)}", soft_wrap=True)
    if r.recent_failures:
        console.print(f"[bold]Recent failures[/] ({r.failed_total} failed in all)")
        for f in r.recent_failures:
            retry = f"retry at {fmt_time(f.retry_at)}" if f.will_retry else "no retry"
            console.print(
                f"  {escape(f.external_id)}: {f.stage} attempt {f.attempt} — "
                f"{f.error_type}: {escape(f.error_message or '')} ({retry})"
            )


@handle_errors
def sessions(
    ctx: typer.Context,
    stage: Annotated[str | None, typer.Option("--stage")] = None,
    status_: Annotated[str | None, typer.Option("--status")] = None,
    company: CompanyOpt = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Sessions by stage and status (most recently changed first)."""
    stage_v = Stage.parse(stage) if stage else None
    status_v = Status.parse(status_) if status_ else None
    with state(ctx).runtime() as rt:
        catch_up(rt)
        info = optional_company(rt, company)
        with rt.engine.connect() as conn:
            rows = list_sessions(conn, stage_v, status_v, info.company_id if info else None, limit)
    if json_out:
        print_json(rows)
        return
    table = Table(title="Sessions")
    for col in (
        "external id",
        "session id",
        "stage",
        "status",
        "attempt",
        "updated",
        "note / error",
    ):
        table.add_column(col)
    for r in rows:
        table.add_row(
            escape(r.external_id),
            str(r.session_id),
            r.stage,
            styled_status(r.status),
            str(r.attempt),
            fmt_time(r.updated_at),
            escape(r.error_message or r.note or ""),
        )
    console.print(table)


@handle_errors
def failed(
    ctx: typer.Context,
    stage: Annotated[str | None, typer.Option("--stage")] = None,
    company: CompanyOpt = None,
    limit: Annotated[int, typer.Option("--limit")] = 100,
    json_out: JsonOpt = False,
) -> None:
    """Failed stages: the error, the attempt, and whether and when it will be retried."""
    stage_v = Stage.parse(stage) if stage else None
    with state(ctx).runtime() as rt:
        catch_up(rt)
        info = optional_company(rt, company)
        with rt.engine.connect() as conn:
            rows = failed_query(conn, stage_v, info.company_id if info else None, limit)
    if json_out:
        print_json(rows)
        return
    table = Table(title=f"Failures ({len(rows)})")
    for col in ("external id", "stage", "attempt", "ran", "error type", "message", "retry"):
        table.add_column(col)
    for f in rows:
        retry = fmt_time(f.retry_at) if f.will_retry else "[red]no[/]"
        table.add_row(
            escape(f.external_id),
            f.stage,
            str(f.attempt),
            str(f.attempts_run),
            f.error_type or "",
            escape(f.error_message or ""),
            retry,
        )
    console.print(table)


def resolve_session(rt: Runtime, key: str, company: str | None) -> dict[str, Any]:
    info = optional_company(rt, company)
    with rt.engine.connect() as conn:
        found = find_sessions(conn, key, info.company_id if info else None)
    if not found:
        raise CliError(
            f"unknown session {key!r}",
            hint="use the internal id or the external session id; `livedash sessions` lists them",
        )
    if len(found) > 1:
        names = ", ".join(sorted(str(f["company"]) for f in found))
        raise CliError(
            f"session id {key!r} exists in several companies ({names})",
            hint="add --company NAME",
        )
    return found[0]


def _parse_at(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(
            f"cannot read --at {value!r}",
            hint="use ISO 8601, e.g. 2026-10-01T12:00:00Z",
            code=ExitCode.USAGE,
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@handle_errors
def history(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Internal session id or external session id")],
    company: CompanyOpt = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Show each stage as it was at this ISO time")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Every event of one session, in order; with --at, the stages as they were then."""
    at_v = _parse_at(at) if at else None
    with state(ctx).runtime() as rt:
        catch_up(rt)
        found = resolve_session(rt, session, company)
        sid: UUID = found["session_id"]
        events = rt.app.session_events(sid)
    entries = describe(events)
    header = {
        "session_id": str(sid),
        "external_id": found["external_id"],
        "company": found["company"],
    }
    if at_v is not None:
        states = {}
        for stage, s in _stages_at(events, at_v).items():
            states[stage] = s
        if json_out:
            print_json({**header, "at": at_v.isoformat(), "stages": states})
            return
        console.print(f"[bold]{escape(found['external_id'])}[/] as of {fmt_time(at_v)} UTC")
        table = Table()
        for col in ("stage", "status", "attempt", "retries", "since", "error / note"):
            table.add_column(col)
        for stage, s in states.items():
            table.add_row(
                stage,
                styled_status(s["status"]),
                str(s["attempt"]),
                str(s["retry_count"]),
                fmt_time(s["updated_at"]),
                escape(s["error_message"] or s["note"] or ""),
            )
        console.print(table)
        return
    if json_out:
        print_json({**header, "events": entries})
        return
    console.print(f"[bold]{escape(found['external_id'])}[/] ({sid}) — {escape(found['company'])}")
    table = Table()
    for col in ("#", "time (UTC)", "event", "stage", "status", "attempt", "worker", "detail"):
        table.add_column(col, no_wrap=col in ("#", "time (UTC)", "event"))
    for e in entries:
        change = (
            f"{e.status_before or '-'} → {styled_status(e.status_after)}"
            if e.status_after and e.status_before != e.status_after
            else ""
        )
        detail = e.error or e.reason or ""
        if e.error_type:
            detail = f"{e.error_type}: {detail}"
        if e.metadata:
            detail = (detail + " " if detail else "") + ", ".join(
                f"{k}={v}" for k, v in list(e.metadata.items())[:4]
            )
        if e.actor:
            detail += f" (by {e.actor})"
        table.add_row(
            str(e.version),
            fmt_time(e.timestamp),
            e.event,
            e.stage or "",
            change,
            str(e.attempt or ""),
            escape(e.worker or ""),
            escape(detail),
        )
    console.print(table)


def _stages_at(events: list[Any], at: datetime) -> dict[str, dict[str, Any]]:
    """Folds the events up to ``at``; before the session existed every stage is absent."""
    session = None
    for event in events:
        if event.timestamp > at:
            break
        session = event.mutate(session)
    if session is None:
        raise CliError(f"the session did not exist yet at {at.isoformat()}")
    return {
        stage.value: {
            "status": s.status.value,
            "attempt": s.attempt,
            "retry_count": s.retry_count,
            "updated_at": s.updated_at,
            "error_type": s.error_type,
            "error_message": s.error_message,
            "retry_at": s.retry_at,
            "note": s.note,
        }
        for stage, s in session.stages.items()
    }
