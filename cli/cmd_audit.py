"""`livedash audit head` and `livedash audit verify`: the log's hash chain
(projections/chain.py), for an auditor who keeps the head outside the database."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from cli.context import handle_errors, state
from cli.errors import CliError, ExitCode
from cli.output import console, print_json
from cli.runtime import log_reader
from projections.chain import Head, extend, verify

app = typer.Typer(help="The log's hash chain: its head, and a check that nothing was changed.")

DIGEST = re.compile(r"^(\d+):([0-9a-f]{64})$")


@app.command("head")
@handle_errors
def head_command(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Links what is new in the log, then prints the chain's head: keep it somewhere else and
    give it to `audit verify --expect` later."""
    with state(ctx).runtime() as rt:
        top = extend(log_reader(rt))
    if json_out:
        print_json({"position": top.position, "hash": top.hash, "digest": str(top)})
        return
    console.print(f"position [bold]{top.position}[/]  hash [bold]{top.hash}[/]")
    console.print(f"[dim]digest to keep: {top}[/]", soft_wrap=True)


def _expected(text: str | None) -> Head | None:
    if text is None:
        return None
    match = DIGEST.match(text.strip().lower())
    if match is None:
        raise CliError(
            f"--expect {text!r} is not a digest",
            hint="use the POSITION:HASH that `livedash audit head` printed",
            code=ExitCode.USAGE,
        )
    return Head(int(match[1]), match[2])


@app.command("verify")
@handle_errors
def verify_command(
    ctx: typer.Context,
    start: Annotated[
        int,
        typer.Option("--from", min=0, help="Start after this log position (its link is trusted)"),
    ] = 0,
    expect: Annotated[
        str | None,
        typer.Option("--expect", help="A digest POSITION:HASH from `audit head` to check as well"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Recomputes the chain from the log; exit 6 at the first position where the log was
    altered, cut or inserted into."""
    kept = _expected(expect)
    with state(ctx).runtime() as rt:
        verdict = verify(log_reader(rt), start, kept)
    found = verdict.finding
    if json_out:
        print_json(
            {
                "intact": verdict.intact,
                "checked": verdict.checked,
                "head": {"position": verdict.head.position, "hash": verdict.head.hash},
                "finding": None
                if found is None
                else {"position": found.position, "kind": found.kind, "detail": found.detail},
            }
        )
    elif found is None:
        console.print(
            f"[green]intact:[/] {verdict.checked} events checked up to position "
            f"{verdict.head.position}"
        )
    else:
        console.print(
            f"[red]{found.kind} at position {found.position}:[/] {found.detail} "
            f"({verdict.checked} events checked before it)",
            soft_wrap=True,
        )
    if found is not None:
        raise typer.Exit(ExitCode.TAMPERED)
