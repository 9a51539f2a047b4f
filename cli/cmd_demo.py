"""`livedash demo`: the whole pipeline on bundled data, offline, in a fresh SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import cmd_reports
from cli.bootstrap import make_reporter, run_daemon, stage_configs
from cli.context import State, catch_up, handle_errors, state
from cli.errors import CliError
from cli.output import console, heading
from cli.runtime import Runtime
from domain.company import Company
from domain.stages import WORKER_STAGES, Stage, Status
from processors.clock import utc_now
from processors.ingest.importer import file_reader, run_import
from processors.runtime.config import DaemonConfig
from projections.queries import list_sessions

DEMO_COMPANY = "Demo Retail BV"


def default_data_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "examples" / "demo"


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@handle_errors
def demo(
    ctx: typer.Context,
    data: Annotated[
        Path | None, typer.Option("--data", help="Folder with sessions.csv and transcripts/")
    ] = None,
    db: Annotated[
        Path, typer.Option("--db", help="SQLite file to create (replaced if it exists)")
    ] = Path("livedash-demo.db"),
) -> None:
    """Create a fresh SQLite database, import the bundled sessions and run all five stages."""
    folder = (data or default_data_dir()).resolve()
    csv_file = folder / "sessions.csv"
    if not csv_file.exists():
        raise CliError(f"no demo data at {csv_file}", hint="pass --data DIR with sessions.csv")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    st = state(ctx)
    url = f"sqlite:///{db.resolve()}"
    demo_state = State(st.settings.model_copy(update={"database_url": url}), st.secrets)
    heading("[bold]LiveDash demo")
    console.print(f"database: {db}   data: {folder}")
    with Runtime.open(url, create=True, master_key=st.settings.master_key_bytes) as rt:
        company = rt.app.register_company(
            Company.register(DEMO_COMPANY, str(csv_file), utc_now(), timezone="Europe/Amsterdam")
        )
        run = run_import(rt.app, rt.runner, company, file_reader(csv_file), utc_now)
        console.print(f"imported {run.rows_seen} rows: {run.new} sessions, {run.rejected} rejected")
        for r in run.rejections:
            console.print(f"  [red]row {r.row_number}:[/] {r.reason}")
        catch_up(rt)
        config = DaemonConfig(
            worker_id="demo",
            stages=WORKER_STAGES,
            stage_configs=stage_configs(st.settings.lease_seconds, {}, {}),
            until_idle=True,
            idle_horizon=0.0,
            poll_interval=0.2,
            level_interval=1.0,
        )
        reporter = make_reporter(WORKER_STAGES, verbose=False)
        run_daemon(demo_state.settings, demo_state.secrets, rt, config, None, reporter)
        catch_up(rt)
        with rt.engine.connect() as conn:
            done = list_sessions(conn, Stage.QUESTION_EXTRACTION, Status.COMPLETED, None, limit=1)
    heading("status")
    ctx.obj = demo_state
    cmd_reports.status(ctx, company=None, json_out=False)
    sample = next((r for r in done if r.external_id), None)
    if sample is not None:
        heading(f"history of {sample.external_id}")
        cmd_reports.history(ctx, session=sample.external_id, company=None, at=None, json_out=False)
    heading("what failed and why")
    cmd_reports.failed(ctx, stage=None, company=None, limit=20, json_out=False)
    console.print(
        f"\nExplore further: [bold]livedash --database-url sqlite:///{db} status[/] "
        "(or sessions, failed, history ID)"
    )
    console.print(
        f"Look at it in a browser: [bold]livedash serve --database-url sqlite:///{db}[/] "
        "then open http://127.0.0.1:8080/"
    )
