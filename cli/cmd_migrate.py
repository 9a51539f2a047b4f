"""`livedash migrate-legacy`: bring a livedash-node database's companies and sessions over."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from cli.context import handle_errors, state
from cli.errors import CliError, ExitCode
from cli.output import console, err_console, print_json
from cli.runtime import Runtime
from domain.company import check_timezone
from domain.errors import CompanyError
from processors.clock import utc_now
from processors.legacy.migration import migrate_legacy
from processors.legacy.options import LegacyMigrationError, MigrationOptions
from processors.legacy.report import MigrationReport
from processors.legacy.source import LegacyConnectionError
from processors.legacy.variant import LegacySchemaError


def register(app: typer.Typer) -> None:
    app.command("migrate-legacy")(migrate_legacy_cmd)


class _Bar:
    """A progress bar on a terminal; nothing for --json or a pipe."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet or not err_console.is_terminal
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def start(self, total: int) -> None:
        if self.quiet:
            return
        self.bar = Progress(
            TextColumn("migrating"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
        )
        self.task = self.bar.add_task("migrate", total=total)
        self.bar.start()

    def advance(self, n: int) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.advance(self.task, n)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _open_target(
    database_url: str, dry_run: bool, master_key: bytes | None = None
) -> Runtime | None:
    """The store to migrate into. A real run creates its tables (like `init`); a dry run writes
    nothing, so a store that does not exist yet simply has nothing in it."""
    if not dry_run:
        return Runtime.open(database_url, create=True, master_key=master_key)
    try:
        return Runtime.open(database_url, create=False, master_key=master_key)
    except CliError as e:
        if e.code == ExitCode.DATABASE and (
            "no database at" in e.message or "not initialised" in e.message
        ):
            return None
        raise


@handle_errors
def migrate_legacy_cmd(
    ctx: typer.Context,
    from_dsn: Annotated[
        str,
        typer.Option(
            "--from",
            help="The livedash-node PostgreSQL database, e.g. postgresql://user@host/livedash",
            show_default=False,
        ),
    ],
    company: Annotated[
        str | None, typer.Option("--company", help="Only this legacy company (by name)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read and check everything, write nothing")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Legacy sessions per transaction", min=1)
    ] = 1000,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Worker processes (default: 2 for a large migration into PostgreSQL, else 1)",
            min=1,
        ),
    ] = None,
    catch_up: Annotated[
        bool,
        typer.Option(
            "--catch-up/--no-catch-up",
            help="Bring the report tables up to date before exiting (else the next command does)",
        ),
    ] = True,
    timezone: Annotated[
        str,
        typer.Option(
            "--timezone",
            help="IANA zone the legacy server ran in: how the raw CSV times are read, and the "
            "migrated companies' timezone",
        ),
    ] = "UTC",
) -> None:
    """Migrate a livedash-node database: companies, and every session with its history.

    Safe to run again: sessions migrated before are skipped, an interrupted run resumes.
    """
    try:
        check_timezone(timezone)
    except CompanyError as e:
        raise CliError(str(e), code=ExitCode.USAGE) from None
    st = state(ctx)
    bar = _Bar(json_out)
    options = MigrationOptions(
        company=company,
        dry_run=dry_run,
        batch_size=batch_size,
        timezone=timezone,
        database_url=st.settings.database_url,
        workers=workers,
        catch_up=catch_up,
        on_total=bar.start,
        on_progress=bar.advance,
    )
    with ExitStack() as stack:
        rt = _open_target(st.settings.database_url, dry_run, st.settings.master_key_bytes)
        if rt is not None:
            stack.enter_context(rt)
        try:
            report = migrate_legacy(
                from_dsn,
                rt.app if rt else None,
                rt.runner if rt else None,
                utc_now,
                options,
            )
        except LegacySchemaError as e:
            raise CliError(
                f"cannot migrate: {e}",
                hint="--from must name the livedash-node PostgreSQL database (either schema "
                "variant: with SessionImport.status, or with SessionProcessingStatus)",
            ) from None
        except LegacyConnectionError as e:
            raise CliError(
                str(e),
                hint="check the --from DSN and that the server accepts the connection",
                code=ExitCode.DATABASE,
            ) from None
        except LegacyMigrationError as e:
            raise CliError(str(e), code=ExitCode.USAGE) from None
        finally:
            bar.stop()
    if json_out:
        print_json(report)
    else:
        _print(report)


def _print(r: MigrationReport) -> None:
    what = "DRY RUN (nothing written)" if r.dry_run else "MIGRATION COMPLETE"
    console.print(f"source: {r.source} ({r.variant} schema)")
    companies = r.companies
    console.print(
        f"companies: {companies.get('migrated', 0)} migrated, "
        f"{companies.get('already_present', 0)} already present"
    )
    s = r.sessions
    console.print(
        f"sessions: {s.total} in the legacy database; {s.migrated} "
        f"{'would be ' if r.dry_run else ''}migrated, {s.already_migrated} already migrated, "
        f"{s.problems} with problems recorded"
        + (f", {s.not_migrated} not migrated" if s.not_migrated else "")
        + (f" ({s.events} events in {r.seconds:.1f}s)" if not r.dry_run else "")
    )
    if r.projection_seconds:
        console.print(f"report tables brought up to date in {r.projection_seconds:.1f}s")
    console.print(f"\n=== {what} - FINAL STATUS ===")
    for line in r.final_status:
        console.print(line)
    if r.problem_kinds:
        kinds = ", ".join(f"{k} {n}" for k, n in r.problem_kinds.items())
        console.print(f"\nproblems recorded (by kind): {kinds}")
        for ex in r.problem_examples[:5]:
            console.print(f"  {ex.company} / {ex.external_id}: {'; '.join(ex.problems)}")
        if len(r.problem_examples) > 5:
            console.print("  … (--json lists up to 100)")
    if r.warnings:
        console.print()
        for w in r.warnings:
            console.print(f"[yellow]warning:[/] {w}")
