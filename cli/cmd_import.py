"""`livedash import` and `livedash imports`."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cli.context import backend, handle_errors, state
from cli.errors import CliError, ExitCode
from cli.estimates import estimate_settings
from cli.output import console, err_console, fmt_time, print_json
from cli.settings import AISettings
from domain.urls import UrlError, refuse_userinfo
from processors.ai.estimate import AICostEstimate
from processors.ingest.importer import outcome_warning
from processors.service.backend import Backend
from processors.service.estimate import estimate_new_sessions
from processors.service.imports import import_csv, import_runs
from processors.service.lookup import require_company
from projections.models import ImportRunInfo


def register(app: typer.Typer) -> None:
    app.command("import")(import_)
    app.command("imports")(imports)


@handle_errors
def import_(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Argument(help="CSV file to import now (default: the company's own CSV source)"),
    ] = None,
    company: Annotated[str, typer.Option("--company", help="Company the rows belong to")] = "",
    force: Annotated[
        bool, typer.Option("--force", help="Import even when the source reports no change")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Exit with code 5 when any row was rejected or the export had no data rows",
        ),
    ] = False,
    encoding: Annotated[
        str,
        typer.Option(
            "--encoding",
            help="Encoding of the export: utf-8, cp1252, any Python codec, or auto "
            "(utf-8, else cp1252)",
        ),
    ] = "utf-8",
    max_csv_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-csv-bytes",
            min=1,
            help="Refuse a source larger than this (default 1 GiB, or LIVEDASH_MAX_CSV_BYTES)",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Import a CSV export: new rows become sessions, changed rows reopen their sessions."""
    if not company:
        raise CliError(
            "--company is required",
            hint="e.g. livedash import export.csv --company Acme",
            code=ExitCode.USAGE,
        )
    if file is not None:
        try:  # `http://user:pw@host/x.csv` arrives here as a path: never read, stored or shown
            refuse_userinfo(str(file), "CSV")
        except UrlError as e:
            raise CliError(str(e), code=ExitCode.USAGE) from None
    _check_encoding(encoding)
    st = state(ctx)
    limit = max_csv_bytes or st.settings.max_csv_bytes
    with st.runtime() as rt:
        bar = _progress(json_out)
        try:
            report = import_csv(
                backend(rt),
                company,
                file,
                secrets=st.secrets,
                max_bytes=limit,
                force=force,
                encoding=encoding,
                progress=bar.advance,
                on_start=bar.start,
            )
        finally:
            bar.stop()
        priced = _priced(backend(rt), report, st.settings.ai)
    if json_out:
        print_json({**report.model_dump(mode="json"), "ai_cost_estimate": priced})
    else:
        _print_run(report, encoding)
        if priced is not None:
            console.print(
                f"  AI cost estimate for analysing these {priced.sessions} session(s): "
                f"{escape(priced.describe())}"
            )
    if report.outcome == "error":
        raise CliError(f"import failed: {report.error}", code=ExitCode.SOURCE)
    warning = outcome_warning(report.outcome, report.rows_seen)
    if warning:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if strict and (report.rejected or report.outcome == "empty"):
        raise typer.Exit(int(ExitCode.REJECTED_ROWS))


def _priced(b: Backend, report: ImportRunInfo, ai: AISettings) -> AICostEstimate | None:
    """What the new and changed sessions will cost to analyse; None when there are none."""
    count = report.new + report.changed
    if count == 0 or report.outcome == "error":
        return None
    company = require_company(b.engine, report.company)
    return estimate_new_sessions(b, company.company_id, count, estimate_settings(ai))


def _check_encoding(name: str) -> None:
    if name.strip().lower() == "auto":
        return
    try:
        text = getattr(codecs.lookup(name.strip()), "_is_text_encoding", True)
    except LookupError:
        text = False
    if not text:
        raise CliError(
            f"unknown encoding {name!r}",
            hint="use utf-8, cp1252, another Python codec name, or auto",
            code=ExitCode.USAGE,
        )


class _progress:
    """A progress bar on a terminal for long imports; silent for scripts and small files."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def start(self, size: int) -> None:
        if self.quiet or not console.is_terminal or size < 512 * 1024:
            return
        self.bar = Progress(
            TextColumn("importing"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.bar.add_task("import", total=size)
        self.bar.start()

    def advance(self, position: int) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=position)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print_run(run: ImportRunInfo, requested_encoding: str) -> None:
    decoded = ""
    if run.encoding and requested_encoding.strip().lower() == "auto":
        decoded = f", read as {run.encoding}"
    console.print(
        f"[bold]{escape(run.company)}[/] {escape(run.source)}\n"
        f"  rows seen {run.rows_seen}   new [green]{run.new}[/]   changed [cyan]{run.changed}[/]   "
        f"unchanged {run.unchanged}   rejected [red]{run.rejected}[/]   "
        f"({run.bytes} bytes{decoded}, {run.duration_ms:.0f} ms)"
    )
    for r in run.rejections:
        console.print(f"  [red]row {r.row_number}:[/] {escape(r.reason)}")


@handle_errors
def imports(
    ctx: typer.Context,
    company: Annotated[str | None, typer.Option("--company")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Recent import runs with their counts and rejections."""
    with state(ctx).runtime() as rt:
        runs = import_runs(backend(rt), company, limit=limit, rejections=json_out)
    if json_out:
        print_json(runs)
        return
    table = Table(title="Import runs")
    for col in (
        "finished",
        "company",
        "outcome",
        "seen",
        "new",
        "changed",
        "unchanged",
        "rejected",
        "bytes",
        "ms",
        "http",
    ):
        table.add_column(col)
    for r in runs:
        table.add_row(
            fmt_time(r.finished_at),
            escape(r.company),
            r.outcome,
            str(r.rows_seen),
            str(r.new),
            str(r.changed),
            str(r.unchanged),
            str(r.rejected),
            str(r.bytes),
            f"{r.duration_ms:.0f}",
            str(r.http_status or "-"),
        )
    console.print(table)
