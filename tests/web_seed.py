"""A small real pipeline for the web tests: the demo's first rows imported and run through all
five stages by the real daemon (offline analyser), so the pages show completions, a skipped
fetch and failures (a transcript file that is missing), on SQLite or PostgreSQL."""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from pathlib import Path

from cli.bootstrap import run_daemon, stage_configs
from cli.cmd_demo import default_data_dir
from cli.runtime import Runtime
from cli.settings import Settings
from domain.stages import WORKER_STAGES, Stage, Status
from processors.clock import utc_now
from processors.runtime.config import DaemonConfig
from processors.runtime.reporting import JsonLogReporter
from processors.service.backend import Backend
from processors.service.companies import CompanySettings, add_company
from processors.service.imports import import_csv
from projections.queries import failed, list_sessions

COMPANY = "Web Test BV"
ROWS = 12
"""The demo's first rows: one without a transcript (skipped), one whose file is missing
(TRANSCRIPT_FETCH fails, not retryable), the rest complete."""


@dataclass
class Seeded:
    url: str
    failed_external_id: str
    completed_external_id: str
    empty_external_id: str
    """Its transcript file is empty: TRANSCRIPT_FETCH failed with ``empty``."""


def seed(url: str, folder: Path) -> Seeded:
    source = default_data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    lines = (source / "sessions.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    csv_file = folder / "sessions.csv"
    csv_file.write_text("".join(lines[: ROWS + 1]), encoding="utf-8")
    shutil.copytree(source / "transcripts", folder / "transcripts", dirs_exist_ok=True)
    settings = Settings.from_env({}, database_url=url, actor="seed")
    with Runtime.open(url, create=True) as rt:
        backend = Backend(app=rt.app, engine=rt.engine, runner=rt.runner, clock=utc_now)
        add_company(backend, COMPANY, CompanySettings(csv_url=str(csv_file), timezone="UTC"))
        import_csv(backend, COMPANY, csv_file, secrets={}.get, max_bytes=10**7)
        config = DaemonConfig(
            worker_id="web-seed",
            stages=WORKER_STAGES,
            stage_configs=stage_configs(30.0, {}, {}),
            until_idle=True,
            idle_horizon=0.0,
            poll_interval=0.05,
            level_interval=0.5,
        )
        run_daemon(settings, {}.get, rt, config, None, JsonLogReporter(io.StringIO()))
        rt.runner.catch_up()
        with rt.engine.connect() as conn:
            failures = failed(conn)
            done = list_sessions(conn, Stage.QUESTION_EXTRACTION, Status.COMPLETED, limit=1)
    assert failures and done, "the seed should leave a failure and a completed session"
    by_type = {f.error_type: f.external_id for f in failures}
    assert {"not_found", "empty"} <= set(by_type), by_type
    return Seeded(url, by_type["not_found"], done[0].external_id, by_type["empty"])
