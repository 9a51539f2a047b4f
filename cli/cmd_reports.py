"""`livedash status | sessions | failed | history`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.context import backend, catch_up, handle_errors, optional_company, state
from cli.errors import CliError, ExitCode
from cli.output import console, fmt_age, fmt_time, print_json, styled_status
from domain.partitions import PARTITIONS
from domain.stages import STAGE_ORDER, STATUSES, Stage, Status
from processors.clock import utc_now
from processors.service.history import SessionAt, session_at, session_history
from processors.service.lookup import SessionRef
from processors.service.pauses import switches
from projections.budgets import budget_standing
from projections.models import BudgetInfo, FleetInfo, StatusReport
from projections.queries import failed as failed_query
from projections.queries import list_sessions, status_report


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("sessions")(sessions)
    app.command("failed")(failed)
    app.command("history")(history)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
CompanyOpt = Annotated[str | None, typer.Option("--company", help="Only this company")]


@handle_errors
def status(
    ctx: typer.Context,
    company: CompanyOpt = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="The counts as they were at this ISO time (UTC if no zone)"),
    ] = None,
    between: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--between",
            help="What changed after the first ISO time and up to the second",
            metavar="T1 T2",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Where every session is: counts per stage and status, what needs work, what failed."""
    if at is not None or between is not None:
        from cli.cmd_status_at import status_then  # it reuses parse_time from here

        status_then(ctx, company, at, between, json_out)
        return
    with state(ctx).runtime() as rt:
        catch_up(rt)
        info = optional_company(rt, company)
        with rt.engine.connect() as conn:
            report = status_report(
                conn, info.company_id if info else None, info.name if info else None
            )
            report.budgets = budget_standing(
                conn, utc_now(), state(ctx).settings.ai_budget, info.company_id if info else None
            )
        paused, breakers = switches(backend(rt))
    if info is not None:
        paused = [p for p in paused if p.company in (None, info.name)]
    sealing = "sealed" if rt.app.data_keys is not None else "plain"
    report = report.model_copy(
        update={"paused": paused, "breakers": breakers, "personal_data": sealing}
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
    for b in r.budgets:
        _print_budget(b)
    for problem in r.import_warnings:
        console.print(f"[yellow]import:[/] {escape(problem.message)}", soft_wrap=True)
    _print_switches(r)
    if r.personal_data == "plain":
        console.print(
            "[dim]personal data: stored in plain text (no LIVEDASH_MASTER_KEY when the "
            "database was set up): `erase` cannot shred it[/]"
        )
    if r.fleet is not None:
        _print_fleet(r.fleet)
    if r.recent_failures:
        console.print(f"[bold]Recent failures[/] ({r.failed_total} failed in all)")
        for f in r.recent_failures:
            retry = f"retry at {fmt_time(f.retry_at)}" if f.will_retry else "no retry"
            console.print(
                f"  {escape(f.external_id)}: {f.stage} attempt {f.attempt} — "
                f"{f.error_type}: {escape(f.error_message or '')} ({retry})"
            )


def _print_budget(b: BudgetInfo) -> None:
    spent = f"€{b.spent_eur:.2f} of {b.budget}"
    if b.reached:
        console.print(
            f"[yellow]budget reached:[/] {escape(b.scope)}: {spent} — AI_ANALYSIS of "
            f"{b.waiting_sessions} session(s) waits; resumes on {fmt_time(b.resumes_at)}"
        )
    else:
        console.print(f"AI budget {escape(b.scope)}: {spent} this period")


def _print_switches(r: StatusReport) -> None:
    """The operators' pauses and the breakers that are not closed (a closed one: its last
    change, dimmed, so an outage that passed is still seen)."""
    for p in r.paused:
        who = p.company or "every company"
        console.print(
            f"[yellow]paused:[/] {p.stage} for {escape(who)} by {escape(p.actor)} since "
            f"{fmt_time(p.since)} — {escape(p.reason)}",
            soft_wrap=True,
        )
    for b in r.breakers:
        head = f"{b.stage} → {escape(b.provider)}"
        if b.state == "open":
            console.print(
                f"[red]circuit breaker open:[/] {head} since {fmt_time(b.since)}, probe at "
                f"{fmt_time(b.reopens_at)} (cool-down {b.cool_down_seconds:g}s) — "
                f"{escape(b.reason)}",
                soft_wrap=True,
            )
        elif b.state == "half_open":
            console.print(
                f"[yellow]circuit breaker half-open:[/] {head}: one probe by "
                f"{escape(b.probe_by or '?')} since {fmt_time(b.since)}",
                soft_wrap=True,
            )
        else:
            console.print(
                f"[dim]circuit breaker closed: {head} since {fmt_time(b.since)} — "
                f"{escape(b.reason)}[/]",
                soft_wrap=True,
            )


def _print_fleet(f: FleetInfo) -> None:
    line = f"Daemons: {f.live_daemons} live"
    if f.partitions_unowned is None:
        console.print(line)
    elif f.partitions_unowned and f.live_daemons:
        console.print(
            f"{line}; [yellow]{f.partitions_unowned} of {PARTITIONS} partitions unowned[/] "
            "(taken over within the claim timeout)"
        )
    else:
        console.print(f"{line}; partitions unowned: {f.partitions_unowned}")


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


def _parse_at(value: str) -> datetime:
    return parse_time(value, "--at")


def parse_time(value: str, option: str) -> datetime:
    """An option's ISO 8601 time; without a zone it is UTC."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(
            f"cannot read {option} {value!r}",
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
    if at_v is not None:
        with state(ctx).runtime() as rt:
            then = session_at(backend(rt), session, at_v, company)
        _print_stages_at(then, json_out)
        return
    with state(ctx).runtime() as rt:
        trail = session_history(backend(rt), session, company)
    found, sid, entries = trail.session, trail.session.session_id, trail.events
    erased = trail.erased
    if json_out:
        print_json({**_header(found), "erased": erased, "events": entries})
        return
    console.print(f"[bold]{escape(found.external_id)}[/] ({sid}) — {escape(found.company)}")
    if erased is not None:
        console.print(f"[yellow]{escape(erased.line())}[/]: {escape(erased.reason)}")
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


def _header(ref: SessionRef) -> dict[str, Any]:
    return {
        "session_id": str(ref.session_id),
        "external_id": ref.external_id,
        "company": ref.company,
    }


def _print_stages_at(then: SessionAt, json_out: bool) -> None:
    states = {stage: s.model_dump() for stage, s in then.stages.items()}
    if json_out:
        print_json({**_header(then.session), "at": then.at.isoformat(), "stages": states})
        return
    console.print(f"[bold]{escape(then.session.external_id)}[/] as of {fmt_time(then.at)} UTC")
    table = Table()
    for col in ("stage", "status", "attempt", "retries", "since", "error / note"):
        table.add_column(col)
    for stage, st in states.items():
        table.add_row(
            stage,
            styled_status(st["status"]),
            str(st["attempt"]),
            str(st["retry_count"]),
            fmt_time(st["updated_at"]),
            escape(st["error_message"] or st["note"] or ""),
        )
    console.print(table)
