"""`livedash stage pause|resume`: an operator's switch on a stage, for all companies or one.

The pause is an event on the pipeline's aggregate; every daemon reads it on its next level
tick: queued work of the stage goes back unstarted (no attempt used), running work finishes,
nothing new starts until it is resumed.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from cli.context import backend, catch_up, handle_errors, state
from cli.errors import CliError, ExitCode
from cli.output import console, fmt_time, print_json
from domain.stages import Stage
from processors.service.pauses import PauseResult, pause_stage, resume_stage
from projections.models import PauseInfo

app = typer.Typer(help="Pause and resume a stage in every daemon.", no_args_is_help=True)

StageArg = Annotated[str, typer.Argument(help="The stage, e.g. AI_ANALYSIS")]
CompanyOpt = Annotated[
    str | None, typer.Option("--company", help="Only this company's work (default: all)")
]
ActorOpt = Annotated[
    str | None, typer.Option("--actor", help="Who is acting (default: --actor or the OS user)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _parse(stage: str) -> Stage:
    try:
        return Stage.parse(stage)
    except ValueError as e:
        raise CliError(str(e), code=ExitCode.USAGE) from None


@app.command("pause")
@handle_errors
def pause(
    ctx: typer.Context,
    stage: StageArg,
    reason: Annotated[str, typer.Option("--reason", help="Why: shown in `status`")],
    company: CompanyOpt = None,
    actor: ActorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Stop starting the stage's work (in every daemon, within one level tick)."""
    st = state(ctx)
    with st.runtime() as rt:
        catch_up(rt)
        result = pause_stage(
            backend(rt), _parse(stage), company, reason, actor or st.settings.actor
        )
    if json_out:
        print_json(result.model_dump())
        return
    what = _what(result)
    if result.changed:
        console.print(f"paused {what} (by {escape(result.actor)}: {escape(result.reason)})")
    else:
        console.print(
            f"{what} was paused already (by {escape(result.actor)}: {escape(result.reason)})"
        )


@app.command("resume")
@handle_errors
def resume(
    ctx: typer.Context,
    stage: StageArg,
    company: CompanyOpt = None,
    reason: Annotated[str, typer.Option("--reason", help="Recorded with the resume")] = "resumed",
    actor: ActorOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Let the stage's work start again; waiting work is taken up on the next level tick."""
    st = state(ctx)
    with st.runtime() as rt:
        catch_up(rt)
        result = resume_stage(
            backend(rt), _parse(stage), company, reason, actor or st.settings.actor
        )
    if json_out:
        print_json(result.model_dump())
    elif result.changed:
        console.print(f"resumed {_what(result)} (by {escape(result.actor)})")
    if not result.changed:
        held = ", ".join(_describe(p) for p in result.paused) or "none"
        raise CliError(f"{_what(result)} is not paused", hint=f"pauses in force: {held}")


def _what(result: PauseResult) -> str:
    who = f"for {escape(result.company)}" if result.company else "for every company"
    return f"{result.stage} {who}"


def _describe(p: PauseInfo) -> str:
    return f"{p.stage} ({p.company or 'every company'}, since {fmt_time(p.since)})"
