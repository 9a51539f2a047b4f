"""`livedash erase`: crypto-shredding of sessions' personal data."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from cli.cmd_reports import parse_time
from cli.context import backend, handle_errors, state
from cli.errors import CliError, ExitCode
from cli.output import console, print_json
from processors.service.erase import erase_sessions, resolve_sessions, sessions_started_before


@handle_errors
def erase(
    ctx: typer.Context,
    sessions: Annotated[
        list[str] | None, typer.Argument(help="Session ids (internal or external)")
    ] = None,
    company: Annotated[
        str | None, typer.Option("--company", help="With --before: the company's sessions")
    ] = None,
    before: Annotated[
        str | None,
        typer.Option(
            "--before", help="Every session of --company that started before this ISO time"
        ),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded with the erasure)")] = "",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Erase the personal data of sessions (transcript, messages, IP address, analysis text):
    their data keys are deleted, so it is unreadable everywhere, for good. Transitions,
    counts and costs stay; `history` shows who erased it, when and why."""
    if not reason.strip():
        raise CliError("an erasure needs --reason", code=ExitCode.USAGE)
    if bool(sessions) == (before is not None):
        raise CliError(
            "name sessions, or give --company and --before (not both)",
            hint="livedash erase SESSION_ID... --reason R, or "
            "livedash erase --company X --before 2026-01-01 --reason R",
            code=ExitCode.USAGE,
        )
    if before is not None and company is None:
        raise CliError("--before needs --company", code=ExitCode.USAGE)
    st = state(ctx)
    with st.runtime() as rt:
        b = backend(rt)
        if before is not None:
            assert company is not None
            ids = sessions_started_before(b, company, parse_time(before, "--before"))
        else:
            ids = resolve_sessions(b, sessions or [], company)
        if not ids:
            if json_out:
                print_json({"erased": [], "already_erased": [], "refused": []})
            else:
                console.print("no session to erase")
            return
        if not yes:
            if not sys.stdin.isatty():
                raise CliError(
                    f"erasing {len(ids)} session(s) cannot be undone",
                    hint="add --yes to confirm",
                    code=ExitCode.USAGE,
                )
            typer.confirm(
                f"Erase the personal data of {len(ids)} session(s)? This cannot be undone",
                abort=True,
            )
        result = erase_sessions(b, ids, st.settings.actor, reason)
    if json_out:
        print_json(result)
    else:
        console.print(
            f"erased {len(result.erased)} session(s) (by {escape(result.actor)}: "
            f"{escape(result.reason)})"
        )
        if result.already_erased:
            console.print(f"  {len(result.already_erased)} already erased")
        for r in result.refused:
            console.print(
                f"  [yellow]not erased[/] {escape(r.external_id or str(r.session_id))}: "
                f"{escape(r.reason)}"
            )
    if result.refused:
        raise typer.Exit(int(ExitCode.FAILED))
