"""The CSV_IMPORT stage: parsed rows become `Imported` or `SourceRowChanged` events, in batches.

Change detection reads the row fingerprints from the status projection (caught up first);
the event store's optimistic concurrency catches whatever the projection has not seen yet.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import select

from domain.application import LiveDashApp
from domain.company import Company, ImportRun
from domain.csv_rows import CsvFormatError, ParsedCsv, SourceRow, parse_csv
from domain.session import Session, session_id_for
from processors.clock import Clock
from processors.csv_source import CsvSource, SourceData, SourceError
from projections.queries import fingerprints
from projections.runner import ProjectionRunner
from projections.schema import companies
from projections.status import StatusProjection

Progress = Callable[[int], None]


@dataclass
class ImportCounts:
    new: int = 0
    changed: int = 0
    unchanged: int = 0


def import_parsed(
    app: LiveDashApp,
    runner: ProjectionRunner,
    company: Company,
    parsed: ParsedCsv,
    source: str,
    clock: Clock,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> ImportCounts:
    """Writes the parsed rows; every row ends as new, changed or unchanged."""
    runner.catch_up([StatusProjection.name])
    counts = ImportCounts()
    rows = [row for _, row in parsed.rows]
    for i in range(0, len(rows), batch_size):
        batch = rows[i : i + batch_size]
        _import_batch(app, runner, company, batch, source, clock, counts)
        if progress:
            progress(len(batch))
    return counts


def _import_batch(
    app: LiveDashApp,
    runner: ProjectionRunner,
    company: Company,
    rows: Sequence[SourceRow],
    source: str,
    clock: Clock,
    counts: ImportCounts,
) -> None:
    ids = [session_id_for(company.id, row.external_id) for row in rows]
    with runner.engine.connect() as conn:
        known = fingerprints(conn, ids)
    now = clock()
    to_save: list[Session] = []
    for sid, row in zip(ids, rows, strict=True):
        fingerprint = known.get(sid)
        if fingerprint is None:
            to_save.append(Session.import_row(company.id, row, source, now))
        elif fingerprint == row.fingerprint():
            counts.unchanged += 1
        else:
            session = app.get_session(sid)
            if session.change_row(row, source, now):
                to_save.append(session)
            else:
                counts.unchanged += 1
    result = app.save_batch(to_save)
    for saved in result.saved:
        if saved.version == 1:
            counts.new += 1
        else:
            counts.changed += 1
    for lost in result.lost:
        # Another writer (or an import the projection has not seen yet) got there first.
        assert isinstance(lost, Session)
        current = app.get_session(lost.id)
        if current.change_row(lost.row, source, clock()):
            app.save(current)
            counts.changed += 1
        else:
            counts.unchanged += 1


def run_import(
    app: LiveDashApp,
    runner: ProjectionRunner,
    company: Company,
    read: Callable[[], SourceData],
    clock: Clock,
    progress: Progress | None = None,
    on_parsed: Callable[[ParsedCsv], None] | None = None,
) -> ImportRun:
    """One import run, whatever happens recorded on the company: ok, not modified, or error."""
    started = clock()
    try:
        src = read()
    except SourceError as e:
        where = {"source": e.source} if e.source else {}
        return _record(
            app,
            company,
            started,
            clock(),
            "error",
            error=str(e),
            http_status=e.http_status,
            **where,
        )
    if src.not_modified:
        return _record(
            app,
            company,
            started,
            clock(),
            "not_modified",
            source=src.source,
            http_status=src.http_status,
            etag=src.etag,
            last_modified=src.last_modified,
            content_sha256=src.sha256,
        )
    assert src.data is not None
    try:
        parsed = parse_csv(src.data, company.timezone)
    except CsvFormatError as e:
        return _record(
            app,
            company,
            started,
            clock(),
            "error",
            source=src.source,
            error=str(e),
            bytes=len(src.data),
            http_status=src.http_status,
        )
    if on_parsed:
        on_parsed(parsed)
    counts = import_parsed(app, runner, company, parsed, src.source, clock, progress=progress)
    return _record(
        app,
        company,
        started,
        clock(),
        "ok",
        source=src.source,
        rows_seen=parsed.rows_seen,
        new=counts.new,
        changed=counts.changed,
        unchanged=counts.unchanged,
        rejected=len(parsed.rejections),
        rejections=list(parsed.rejections),
        bytes=len(src.data),
        http_status=src.http_status,
        etag=src.etag,
        last_modified=src.last_modified,
        content_sha256=src.sha256,
    )


def _record(
    app: LiveDashApp,
    company: Company,
    started: datetime,
    finished: datetime,
    outcome: str,
    **fields: Any,
) -> ImportRun:
    fields.setdefault("source", company.csv_url)
    run = ImportRun.model_validate(
        {
            "run_id": uuid4(),
            "started_at": started,
            "finished_at": finished,
            "outcome": outcome,
            **fields,
        }
    )
    app.record_import(company, run)
    return run


def file_reader(path: Path) -> Callable[[], SourceData]:
    """An explicit file import always imports (no conditional skip): the operator asked for it."""

    def read() -> SourceData:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise SourceError(
                f"cannot read {path}: {e.strerror}", source=str(path.resolve())
            ) from None
        return SourceData(data, str(path.resolve()), hashlib.sha256(data).hexdigest())

    return read


class CsvSchedule:
    """Imports every ACTIVE company's source every ``interval`` seconds, one thread at a time,
    so a slow CSV server never holds up the stage workers."""

    def __init__(
        self,
        app: LiveDashApp,
        runner: ProjectionRunner,
        source: CsvSource,
        clock: Clock,
        interval: float,
        log: Callable[..., None],
    ) -> None:
        self.app = app
        self.runner = runner
        self.source = source
        self.clock = clock
        self.interval = interval
        self.log = log
        self.last_run: dict[UUID, float] = {}
        self.thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        """An import is running: `run --until-idle` waits for the sessions it brings."""
        return self.thread is not None and self.thread.is_alive()

    def __call__(self) -> None:
        if self.busy:
            return
        now = time.monotonic()
        due = []
        with self.runner.engine.connect() as conn:
            rows = conn.execute(select(companies.c.company_id, companies.c.status)).all()
        for company_id, status in rows:
            if status != "ACTIVE":
                continue
            if now - self.last_run.get(company_id, -1e18) >= self.interval:
                due.append(company_id)
        if due:
            for company_id in due:
                self.last_run[company_id] = now
            self.thread = threading.Thread(target=self._import_all, args=(due,), daemon=True)
            self.thread.start()

    def _import_all(self, company_ids: list[UUID]) -> None:
        for company_id in company_ids:
            try:
                company = self.app.get_company(company_id)
                run = run_import(
                    self.app,
                    self.runner,
                    company,
                    functools.partial(self.source.read, company),
                    self.clock,
                )
                self.log(
                    "csv_import",
                    company=company.name,
                    outcome=run.outcome,
                    new=run.new,
                    changed=run.changed,
                    rejected=run.rejected,
                    error=run.error,
                )
            except Exception as e:  # the daemon keeps going; the next interval tries again
                self.log(
                    "csv_import_error", company=str(company_id), error=f"{type(e).__name__}: {e}"
                )
