"""`livedash import` and `livedash imports`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cli.context import catch_up, handle_errors, optional_company, require_company, state
from cli.errors import CliError, ExitCode
from cli.output import console, fmt_time, print_json
from domain.csv_rows import ParsedCsv
from domain.urls import UrlError, refuse_userinfo
from processors.clock import utc_now
from processors.csv_import import file_reader, run_import
from processors.csv_source import CsvSource
from projections.models import ImportRunInfo
from projections.queries import list_import_runs


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
        bool, typer.Option("--strict", help="Exit with code 5 when any row was rejected")
    ] = False,
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
    st = state(ctx)
    with st.runtime() as rt:
        catch_up(rt)
        info = require_company(rt, company)
        company_agg = rt.app.get_company(info.company_id)
        source = CsvSource(st.env)
        read = file_reader(file) if file else (lambda: source.read(company_agg, force=force))
        bar = _progress(json_out)
        try:
            run = run_import(
                rt.app,
                rt.runner,
                company_agg,
                read,
                utc_now,
                progress=bar.advance,
                on_parsed=bar.start,
            )
        finally:
            bar.stop()
            source.close()
        catch_up(rt)
        with rt.engine.connect() as conn:
            report = next(
                r
                for r in list_import_runs(conn, info.company_id, limit=5, rejections=True)
                if r.run_id == run.run_id
            )
    if json_out:
        print_json(report)
    else:
        _print_run(report)
    if report.outcome == "error":
        raise CliError(f"import failed: {report.error}", code=ExitCode.SOURCE)
    if strict and report.rejected:
        raise typer.Exit(int(ExitCode.REJECTED_ROWS))


class _progress:
    """A progress bar on a terminal for long imports; silent for scripts and small files."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def start(self, parsed: ParsedCsv) -> None:
        if self.quiet or not console.is_terminal or len(parsed.rows) < 2000:
            return
        self.bar = Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.bar.add_task("import", total=len(parsed.rows))
        self.bar.start()

    def advance(self, n: int) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.advance(self.task, n)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print_run(run: ImportRunInfo) -> None:
    console.print(
        f"[bold]{escape(run.company)}[/] {escape(run.source)}\n"
        f"  rows seen {run.rows_seen}   new [green]{run.new}[/]   changed [cyan]{run.changed}[/]   "
        f"unchanged {run.unchanged}   rejected [red]{run.rejected}[/]   "
        f"({run.bytes} bytes, {run.duration_ms:.0f} ms)"
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
        catch_up(rt)
        info = optional_company(rt, company)
        with rt.engine.connect() as conn:
            runs = list_import_runs(
                conn, info.company_id if info else None, limit=limit, rejections=json_out
            )
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
