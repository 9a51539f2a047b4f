"""`livedash costs | questions | report | reprocess`."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.markup import escape
from rich.table import Table

from cli.context import backend, catch_up, handle_errors, optional_company, state
from cli.errors import CliError, ExitCode
from cli.estimates import DEFAULT_CONFIRM_ABOVE_EUR, ask_above, estimate_settings
from cli.output import console, exact_text, print_json
from cli.runtime import Runtime
from domain.stages import Stage
from processors.service.reprocess import Submit, check_stage, reprocess
from projections.analytics_queries import Period, analytics_report, costs, top_questions

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]
CompanyOpt = Annotated[str | None, typer.Option("--company", help="Only this company")]
FromOpt = Annotated[str | None, typer.Option("--from", help="First day (YYYY-MM-DD, UTC)")]
ToOpt = Annotated[str | None, typer.Option("--to", help="Last day, included (YYYY-MM-DD)")]


def register(app: typer.Typer) -> None:
    app.command("costs")(costs_cmd)
    app.command("questions")(questions_cmd)
    app.command("report")(report_cmd)
    app.command("reprocess")(reprocess_cmd)


def eur(amount: Decimal | None, unknown: int) -> str:
    """An exact amount; "unknown" when nothing is priced, and a note when part is unpriced."""
    if amount is None:
        return "unknown"
    return exact_text(amount) + (f" + {unknown} unknown" if unknown else "")


def _period(first: str | None, last: str | None) -> Period:
    def parse(value: str | None, name: str) -> date | None:
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise CliError(
                f"cannot read {name} {value!r}", hint="use YYYY-MM-DD", code=ExitCode.USAGE
            ) from None

    start, end = parse(first, "--from"), parse(last, "--to")
    if start and end and end < start:
        raise CliError("--to is before --from", code=ExitCode.USAGE)
    return Period.of(start, end)


@handle_errors
def costs_cmd(
    ctx: typer.Context,
    company: CompanyOpt = None,
    by: Annotated[str, typer.Option("--by", help="day, model or company")] = "day",
    first: FromOpt = None,
    last: ToOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What the AI stage cost: requests, tokens and EUR, by day, model or company."""
    if by not in ("day", "model", "company"):
        raise CliError(f"--by {by!r}: use day, model or company", code=ExitCode.USAGE)
    period = _period(first, last)
    with state(ctx).runtime() as rt:
        catch_up(rt)
        info = optional_company(rt, company)
        with rt.engine.connect() as conn:
            report = costs(
                conn,
                by,  # type: ignore[arg-type]
                period,
                info.company_id if info else None,
                info.name if info else None,
            )
    if json_out:
        print_json(report)
        return
    table = Table(title=f"AI costs by {by}")
    for col in ("key", "requests", "prompt", "cached", "completion", "total tokens", "EUR"):
        table.add_column(col, justify="left" if col == "key" else "right")
    for r in report.rows:
        table.add_row(
            escape(r.key), str(r.requests), str(r.prompt_tokens), str(r.cached_tokens),
            str(r.completion_tokens), str(r.total_tokens),
            eur(r.cost_eur, r.unknown_cost_requests),
        )  # fmt: skip
    console.print(table)
    console.print(
        f"total: {report.requests} requests, {report.total_tokens} tokens, "
        f"€{eur(report.total_cost_eur, report.unknown_cost_requests)}"
    )
    if report.requests_answer_lost:
        estimate = report.cost_eur_answer_lost_estimated
        cost = f"at most €{estimate:.6f}, estimated" if estimate is not None else "cost unknown"
        console.print(
            f"[yellow]sent, answer lost:[/] {report.requests_answer_lost} requests ({cost}) - "
            "sent before a crash or a timeout; the provider may have billed them"
        )
    if report.unknown_cost_requests:
        console.print(
            f"[yellow]warning:[/] {report.unknown_cost_requests} requests used a model without a "
            "known price; their cost is not included (add it to the price table)"
        )


@handle_errors
def questions_cmd(
    ctx: typer.Context,
    company: CompanyOpt = None,
    top: Annotated[int, typer.Option("--top", help="How many")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """The most asked questions, per company (never pooled across companies)."""
    with state(ctx).runtime() as rt:
        catch_up(rt)
        info = optional_company(rt, company)
        with rt.engine.connect() as conn:
            rows = top_questions(conn, info.company_id if info else None, top)
    if json_out:
        print_json(rows)
        return
    table = Table(title="Top questions")
    for col in ("company", "count", "question"):
        table.add_column(col)
    for q in rows:
        table.add_row(q.company, str(q.count), q.question)
    console.print(table)


@handle_errors
def report_cmd(
    ctx: typer.Context,
    company: CompanyOpt = None,
    first: FromOpt = None,
    last: ToOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Sessions, sentiment, categories, languages, countries, escalations, questions, costs."""
    period = _period(first, last)
    with state(ctx).runtime() as rt:
        catch_up(rt)
        info = optional_company(rt, company)
        with rt.engine.connect() as conn:
            r = analytics_report(
                conn, period, info.company_id if info else None, info.name if info else None
            )
    if json_out:
        print_json(r)
        return
    console.print(
        f"[bold]Report{f' — {r.company}' if r.company else ''}[/]: {r.total_sessions} sessions, "
        f"{r.analysed_sessions} analysed"
    )
    if r.analyses_by_provider:
        console.print(
            "analyses by: "
            + ", ".join(f"{escape(k)} {v}" for k, v in sorted(r.analyses_by_provider.items()))
        )
    if r.analyses_offline:
        console.print(
            f"[yellow]note:[/] {r.analyses_offline} of {r.analysed_sessions} analyses came from "
            "the offline analyser (rules, not an LLM)"
        )

    def pct(rate: float | None) -> str:
        return f"{rate * 100:.1f}%" if rate is not None else "-"

    console.print(
        f"escalated {r.escalated_count} ({pct(r.escalated_rate)}), forwarded to HR "
        f"{r.forwarded_hr_count} ({pct(r.forwarded_hr_rate)}); avg response "
        f"{r.avg_response_time_s or 0:.2f}s; avg session {r.avg_session_length_s or 0:.0f}s"
    )
    for title, values in (
        ("sentiment", r.sentiment),
        ("category", r.category),
        ("language", r.language),
        ("country", r.country),
    ):
        ranked = sorted(values.items(), key=lambda kv: -kv[1])
        console.print(f"{title}: " + ", ".join(f"{k} {v}" for k, v in ranked))
    if r.top_questions:
        console.print("top questions:")
        for q in r.top_questions:
            console.print(f"  {q.count:4} {q.question}")
    console.print(
        f"AI: {r.ai_requests} requests, €{eur(r.ai_cost_eur, r.ai_unknown_cost_requests)}; "
        f"upstream chatbot: {r.upstream_tokens} tokens, €{exact_text(r.upstream_tokens_eur)}"
    )


@handle_errors
def reprocess_cmd(
    ctx: typer.Context,
    stage: Annotated[str, typer.Option("--stage", help="Stage to run again")] = "AI_ANALYSIS",
    company: CompanyOpt = None,
    model: Annotated[str | None, typer.Option("--model", help="Model to use from now on")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Recorded with each reset")] = "reprocess",
    limit: Annotated[int, typer.Option("--limit", help="At most this many sessions")] = 1_000_000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count and price the work; change nothing")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Go ahead whatever the estimate says")
    ] = False,
    confirm_above: Annotated[
        Decimal,
        typer.Option(
            "--confirm-above",
            help="Ask (or, without a terminal, refuse unless --yes) above this AI cost in EUR",
        ),
    ] = DEFAULT_CONFIRM_ABOVE_EUR,
    batch: Annotated[
        bool,
        typer.Option(
            "--batch",
            help="AI_ANALYSIS only: send the reset sessions as OpenAI Batch API jobs at once "
            "(half the price, results within 24 h; estimated at batch prices); "
            "any `livedash run` with the OpenAI analyser collects the results",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Force completed stages back to PENDING (history keeps the old results) so a new model or
    prompt version runs; --model also sets the company's model. The AI cost it causes is
    estimated first: above --confirm-above EUR (or unknown) it needs --yes."""
    settings = state(ctx).settings
    target = Stage.parse(stage)
    check_stage(target)
    if batch and target is not Stage.AI_ANALYSIS:
        raise CliError(
            "--batch submits AI_ANALYSIS work; an earlier stage reaches AI_ANALYSIS later",
            hint="reprocess that stage without --batch and run `livedash run --ai-mode batch`",
            code=ExitCode.USAGE,
        )
    priced_with = estimate_settings(settings.ai)
    if batch:
        priced_with = replace(priced_with, batch=True)
    with state(ctx).runtime() as rt:
        submit = None
        if batch and not dry_run:
            submit = _batch_submitter(ctx, rt)
        result = reprocess(
            backend(rt),
            target,
            settings.actor,
            company=company,
            model=model,
            reason=reason,
            limit=limit,
            estimate_with=priced_with,
            dry_run=dry_run,
            approve=ask_above(confirm_above, yes),
            submit=submit,
        )
    if json_out:
        print_json(result.model_dump())
        return
    priced = result.ai_cost_estimate
    if priced is not None and priced.requests:
        console.print(f"AI cost estimate: {escape(priced.describe())}")
    if result.dry_run:
        console.print(
            f"dry run: {result.would_reset} session(s) would go back to PENDING at "
            f"{result.stage}; nothing was changed"
        )
    else:
        console.print(
            f"{result.reset} session(s) back to PENDING at {result.stage}"
            + (f"; model now {result.model}" if result.model else "")
            + (" — `livedash run` picks them up" if not batch else "")
        )
    for b in result.batches:
        console.print(
            f"batch {b['key']}: {b['requests']} request(s), {b['model']}, "
            f"{b['status']} as {b['provider_batch_id'] or '(not yet submitted)'}"
        )
    if result.batches:
        console.print(
            "`livedash run` (with the OpenAI analyser, in either --ai-mode) records the results "
            "when they are ready; `livedash batches` shows where they are"
        )


def _batch_submitter(ctx: typer.Context, rt: Runtime) -> Submit:
    from cli.batch_mode import batch_driver
    from processors.runtime.batch_settings import BatchSettings
    from processors.runtime.reporting import JsonLogReporter

    st = state(ctx)
    driver = batch_driver(
        st.settings,
        st.secrets,
        rt.app,
        rt.engine,
        BatchSettings(installation_budget=st.settings.ai_budget),
        JsonLogReporter(stream=sys.stderr).log,
    )

    def submit(ids: list[UUID]) -> list[dict[str, Any]]:
        try:
            return [b.summary() for b in driver.submit_sessions(ids)]
        finally:
            driver.close()

    return submit
