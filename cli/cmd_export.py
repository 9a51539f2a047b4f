"""`livedash export --company X [--since T]`: the company's log as JSON lines, for an auditor."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select

from cli.cmd_reports import parse_time
from cli.context import handle_errors, state
from cli.errors import CliError, ExitCode
from cli.output import err_console
from cli.runtime import log_reader
from processors.service.lookup import require_company
from projections.chain import extend
from projections.export import ChainBroken, company_log
from projections.schema import sessions


@handle_errors
def export(
    ctx: typer.Context,
    company: Annotated[str, typer.Option("--company", help="Company name")],
    since: Annotated[
        str | None, typer.Option("--since", help="Only events at or after this time (ISO 8601)")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout")
    ] = None,
) -> None:
    """Every event of the company and its sessions, in log order, one JSON object per line,
    each with its hash-chain link (see docs/audit.md to check them). Links the log first."""
    start = parse_time(since, "--since") if since else None
    with state(ctx).runtime() as rt:
        info = require_company(rt.engine, company)
        rt.runner.catch_up()  # every session imported so far is in `sessions`
        with rt.engine.connect() as conn:
            ids = {
                r[0]
                for r in conn.execute(
                    select(sessions.c.session_id).where(sessions.c.company_id == info.company_id)
                )
            }
        ids.add(info.company_id)
        top = extend(log_reader(rt))
        out = output.open("w", encoding="utf-8") if output else sys.stdout
        count = 0
        try:
            with rt.app.reading(()):  # each session's data key read once, not per event
                for line in company_log(log_reader(rt), rt.app.mapper, ids, start):
                    out.write(json.dumps(line, ensure_ascii=False) + "\n")
                    count += 1
        except ChainBroken as e:
            raise CliError(
                str(e), hint="`livedash audit verify` says what changed", code=ExitCode.TAMPERED
            ) from None
        finally:
            if output:
                out.close()
    err_console.print(
        f"exported {count} events of {company} up to log position {top.position} "
        f"(chain head {top})",
        soft_wrap=True,
    )
