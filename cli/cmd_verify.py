"""`livedash projections verify`: are the report tables really what the log says?"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.context import handle_errors, state
from cli.errors import CliError, ExitCode
from cli.output import console, print_json
from cli.runtime import all_projections
from projections.verify import Difference, LogMoved, Verification, verify


@handle_errors
def verify_command(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Rebuild every projection from the log into shadow tables and compare them with the
    live ones; exit 7 when any row differs. Best run with the daemons stopped: while they
    write, the shadow catches up with them a few times before it gives up."""
    with state(ctx).runtime() as rt:
        try:
            result = verify(rt.runner, all_projections)
        except LogMoved as e:
            raise CliError(
                str(e), hint="stop the daemons (or wait for a quiet moment) and run it again"
            ) from None
    if json_out:
        print_json(_as_json(result))
    else:
        _print(result)
    if not result.identical:
        raise typer.Exit(ExitCode.DIFFERS)


def _as_json(result: Verification) -> dict[str, Any]:
    return {
        "identical": result.identical,
        "position": result.position,
        "tables": [
            {
                "projection": t.projection,
                "table": t.table,
                "rows_live": t.rows_live,
                "rows_rebuilt": t.rows_rebuilt,
                "differences": t.differences,
                "shown": [_difference(d) for d in t.shown],
            }
            for t in result.tables
        ],
    }


def _difference(d: Difference) -> dict[str, Any]:
    return {
        "key": d.key,
        "kind": d.kind,
        "columns": {c: {"live": a, "rebuilt": b} for c, (a, b) in d.columns.items()},
    }


def _print(result: Verification) -> None:
    table = Table(title=f"Projections against the log at position {result.position}")
    for col in ("projection", "table", "rows live", "rows rebuilt", "differences"):
        table.add_column(col)
    for t in result.tables:
        mark = "[green]0[/]" if not t.differences else f"[red]{t.differences}[/]"
        table.add_row(t.projection, t.table, str(t.rows_live), str(t.rows_rebuilt), mark)
    console.print(table)
    for t in result.tables:
        for d in t.shown:
            key = ", ".join(f"{k}={v}" for k, v in d.key.items())
            cols = "; ".join(f"{c}: live {a!r}, log {b!r}" for c, (a, b) in d.columns.items())
            console.print(f"[red]{d.kind}[/] {t.table} {escape(key)} {escape(cols)}")
    if result.identical:
        console.print("[green]every projection equals the log's rebuild[/]")
