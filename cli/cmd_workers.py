"""`livedash workers`: the daemons that run against this database, and those that stopped or
died within the last hour."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cli.context import handle_errors, state
from cli.output import console, fmt_age, fmt_time, print_json
from processors.clock import utc_now
from projections.workers import WorkerInfo, database_now, workers


def register(app: typer.Typer) -> None:
    app.command("workers")(workers_command)


@handle_errors
def workers_command(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Live daemons (id, host, pid, started, heartbeat, partitions, in flight, completed in
    the last minute) and the recently stopped or dead ones."""
    with state(ctx).runtime() as rt, rt.engine.connect() as conn:
        now = database_now(conn, utc_now)
        found = workers(conn, now)
    if json_out:
        print_json({"workers": [w.model_dump(mode="json") for w in found]})
        return
    _print(found, now.timestamp())


def _state(w: WorkerInfo) -> str:
    if w.live:
        return "[green]live[/]"
    if w.stopped_at is not None:
        return f"stopped ({w.stop_reason or '?'})"
    return "[red]dead[/] (no heartbeat)"


def _print(found: list[WorkerInfo], now: float) -> None:
    live = sum(1 for w in found if w.live)
    console.print(f"[bold]Daemons[/]   live: [bold]{live}[/]")
    if not found:
        console.print("no daemon has run in the last hour (start one with `livedash run`)")
        return
    table = Table()
    for column in ("worker", "host", "pid", "state", "started", "heartbeat"):
        table.add_column(column)
    for column in ("partitions", "in flight", "done/min"):
        table.add_column(column, justify="right")
    for w in found:
        in_flight = ", ".join(f"{k.split('_')[0].lower()} {v}" for k, v in w.in_flight.items() if v)
        table.add_row(
            w.worker_id,
            w.host,
            str(w.pid),
            _state(w),
            fmt_time(w.started_at),
            f"{fmt_age(max(0.0, now - w.heartbeat_at.timestamp()))} ago",
            str(w.partitions),
            in_flight or "0",
            str(w.completed_last_minute),
        )
    console.print(table)
