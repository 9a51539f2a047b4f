"""`livedash status --at T` and `status --between T1 T2`: the overview as of any time."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from cli.cmd_reports import parse_time
from cli.context import catch_up, optional_company, state
from cli.errors import CliError, ExitCode
from cli.output import console, fmt_time, print_json, styled_status
from cli.runtime import Runtime, events_table
from domain.stages import STAGE_ORDER, STATUSES
from projections.overview_at import LogSource, snapshot
from projections.overview_report import StatusAt, StatusBetween, status_at, status_between


def status_then(
    ctx: typer.Context,
    company: str | None,
    at: str | None,
    between: tuple[str, str] | None,
    json_out: bool,
) -> None:
    if at is not None and between is not None:
        raise CliError(
            "--at and --between do not go together",
            hint="ask for one moment (--at T) or one window (--between T1 T2)",
            code=ExitCode.USAGE,
        )
    at_v = parse_time(at, "--at") if at is not None else None
    window = None
    if between is not None:
        window = (parse_time(between[0], "--between"), parse_time(between[1], "--between"))
        if window[1] < window[0]:
            raise CliError(
                "--between: the second time is before the first",
                hint="give the earlier time first: --between T1 T2",
                code=ExitCode.USAGE,
            )
    with state(ctx).runtime() as rt:
        catch_up(rt)
        info = optional_company(rt, company)
        cid, name = (info.company_id, info.name) if info else (None, None)
        with snapshot(rt.engine) as conn:
            if at_v is not None:
                report: StatusAt | StatusBetween = status_at(conn, log_source(rt), at_v, cid, name)
            else:
                assert window is not None
                report = status_between(conn, log_source(rt), window[0], window[1], cid, name)
    if json_out:
        print_json(report)
    elif isinstance(report, StatusAt):
        _print_at(report)
    else:
        _print_between(report)


def log_source(rt: Runtime) -> LogSource:
    return LogSource(events_table(rt.config), rt.config.schema or None, rt.app.mapper)


def _counts_table(stages: dict[str, dict[str, int]], signed: bool = False) -> Table:
    table = Table()
    table.add_column("stage")
    for s in STATUSES:
        table.add_column(styled_status(s.value), justify="right")
    for stage in STAGE_ORDER:
        counts = stages[stage.value]
        table.add_row(
            stage.value, *((f"{counts[s.value]:+d}" if signed else str(counts[s.value]))
                           for s in STATUSES)
        )  # fmt: skip
    return table


def _print_at(r: StatusAt) -> None:
    title = f"Pipeline status{f' — {escape(r.company)}' if r.company else ''}"
    console.print(
        f"[bold]{title} as of {fmt_time(r.at)} UTC[/]   total sessions: "
        f"[bold]{r.total_sessions}[/]   (log position {r.position})"
    )
    console.print(_counts_table(r.stages))
    needs = [
        f"  • {stage}: {n.pending} pending, {n.failed_retrying} retrying, {n.failed_dead} failed"
        for stage, n in r.needs_processing.items()
        if n.pending or n.failed_retrying or n.failed_dead
    ]
    if needs:
        console.print("[bold]What needed processing[/]")
        console.print("\n".join(needs))


def _print_between(r: StatusBetween) -> None:
    who = f" — {escape(r.company)}" if r.company else ""
    console.print(
        f"[bold]What changed{who} after {fmt_time(r.since)} up to {fmt_time(r.until)} UTC[/]"
    )
    console.print(
        f"sessions: {r.before.total_sessions} → {r.after.total_sessions} "
        f"({r.sessions_imported} imported); failures: {r.failures_total}; "
        f"cost: {r.cost_eur if r.cost_eur is not None else '-'} EUR"
    )
    console.print("[bold]Net change per stage and status[/]")
    console.print(_counts_table(r.change, signed=True))
    if r.transitions:
        table = Table(title="Transitions")
        for col in ("stage", "from", "to", "count"):
            table.add_column(col, justify="right" if col == "count" else "left")
        for t in r.transitions:
            table.add_row(
                t.stage, t.from_status or "(new)", styled_status(t.to_status), str(t.count)
            )
        console.print(table)
    for f in r.failures:
        console.print(f"  failed: {f.stage} {escape(f.error_type)} × {f.count}")
    for reset in r.resets:
        console.print(f"  reset: {reset.stage} by {escape(reset.actor)} × {reset.count}")
    for c in r.ai_calls:
        cost = f"{c.cost_eur} EUR" if c.cost_eur is not None else "cost unknown"
        console.print(f"  AI: {c.stage} {escape(c.model)}: {c.calls} calls, {cost}")
