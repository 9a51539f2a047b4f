"""The CSV_IMPORT stage: parsed rows become `Imported` or `SourceRowChanged` events, in batches.

Change detection reads the row fingerprints from the status projection (caught up first);
the event store's optimistic concurrency catches whatever the projection has not seen yet.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from domain.company import MAX_REJECTIONS_KEPT, Company, ImportRun, import_warning
from domain.csv_rows import (
    CsvFormatError,
    CsvRowStream,
    Parsed,
    ParsedCsv,
    RowRejection,
    SourceRow,
    choose_encoding,
)
from domain.session import Session, session_id_for
from processors.clock import Clock
from processors.ingest.source import (
    DEFAULT_MAX_CSV_BYTES,
    DEFAULT_MAX_SECONDS,
    CsvSource,
    SourceData,
    SourceError,
    read_local,
)
from projections.queries import fingerprints
from projections.runner import ProjectionRunner
from projections.status import StatusProjection
from projections.work import company_statuses
from store.application import LiveDashApp

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
    rows = (row for _, row in parsed.rows)
    return import_rows(app, runner, company, rows, source, clock, batch_size, progress)


def import_rows(
    app: LiveDashApp,
    runner: ProjectionRunner,
    company: Company,
    rows: Iterable[SourceRow],
    source: str,
    clock: Clock,
    batch_size: int = 1000,
    progress: Progress | None = None,
    counts: ImportCounts | None = None,
) -> ImportCounts:
    """Writes rows as they come, a batch at a time, so an export of any size is never held
    whole; every row ends as new, changed or unchanged (in ``counts``, also when it fails)."""
    runner.catch_up([StatusProjection.name])
    counts = counts if counts is not None else ImportCounts()
    it = iter(rows)
    while batch := list(itertools.islice(it, batch_size)):
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


class _Tally:
    """Counts what the parser made of the records, keeping the first rejections to show."""

    def __init__(self) -> None:
        self.accepted = 0
        self.rejected = 0
        self.rejections: list[RowRejection] = []

    def rows(self, parsed: Iterable[Parsed]) -> Iterator[SourceRow]:
        for item in parsed:
            if isinstance(item, RowRejection):
                self.rejected += 1
                if len(self.rejections) < MAX_REJECTIONS_KEPT:
                    self.rejections.append(item)
            else:
                self.accepted += 1
                yield item[1]

    @property
    def outcome(self) -> str:
        if self.accepted:
            return "ok"
        return "all_rejected" if self.rejected else "empty"


def run_import(
    app: LiveDashApp,
    runner: ProjectionRunner,
    company: Company,
    read: Callable[[], SourceData],
    clock: Clock,
    progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
    encoding: str = "utf-8",
) -> ImportRun:
    """One import run, whatever happens recorded on the company: ok, empty, all rejected, not
    modified, or error. The source is parsed and written as a stream; ``on_start`` gets its
    size in bytes and ``progress`` the bytes read so far, after each batch."""
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
    if src.body is None:
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
    with src.body as body:
        fields: dict[str, Any] = {
            "source": src.source,
            "bytes": body.size,
            "http_status": src.http_status,
        }
        try:
            used = choose_encoding(body.chunks(), encoding)
        except CsvFormatError as e:
            return _record(app, company, started, clock(), "error", error=str(e), **fields)
        if on_start:
            on_start(body.size)
        stream = CsvRowStream(company.timezone)
        tally = _Tally()
        counts = ImportCounts()
        text = body.text(used)
        advance = (lambda _: progress(body.file.tell())) if progress else None
        try:
            import_rows(
                app,
                runner,
                company,
                tally.rows(stream.parse_text(text)),
                src.source,
                clock,
                progress=advance,
                counts=counts,
            )
        except UnicodeDecodeError as e:  # checked above: the file changed while it was read
            error = f"the file changed while it was read: not valid {used} any more ({e.reason})"
            return _record(
                app,
                company,
                started,
                clock(),
                "error",
                error=error,
                encoding=used,
                **_tallied(tally, counts),
                **fields,
            )
        finally:
            text.detach()
    return _record(
        app,
        company,
        started,
        clock(),
        tally.outcome,
        encoding=used,
        **_tallied(tally, counts),
        **fields,
        etag=src.etag,
        last_modified=src.last_modified,
        content_sha256=src.sha256,
    )


def outcome_warning(outcome: str, rows_seen: int) -> str | None:
    """The warning for a run that read its source but brought no row (errors are reported
    as errors)."""
    return import_warning(outcome, rows_seen) if outcome in ("empty", "all_rejected") else None


def _tallied(tally: _Tally, counts: ImportCounts) -> dict[str, Any]:
    return {
        "rows_seen": tally.accepted + tally.rejected,
        "new": counts.new,
        "changed": counts.changed,
        "unchanged": counts.unchanged,
        "rejected": tally.rejected,
        "rejections": tally.rejections,
    }


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


def file_reader(
    path: Path, max_bytes: int = DEFAULT_MAX_CSV_BYTES, max_seconds: float = DEFAULT_MAX_SECONDS
) -> Callable[[], SourceData]:
    """An explicit file import always imports (no conditional skip): the operator asked for it."""

    def read() -> SourceData:
        where = str(path.resolve())
        try:
            body, digest = read_local(path, max_bytes, max_seconds)
        except SourceError as e:
            raise SourceError(str(e), source=where) from None
        return SourceData(body, where, digest)

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
            statuses = company_statuses(conn)
        for company_id, status in statuses.items():
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
                warning = outcome_warning(run.outcome, run.rows_seen)
                if warning:
                    self.log(
                        "csv_import_warning",
                        level="warning",
                        company=company.name,
                        outcome=run.outcome,
                        message=f"company {company.name}: {warning}",
                    )
            except Exception as e:  # the daemon keeps going; the next interval tries again
                self.log(
                    "csv_import_error", company=str(company_id), error=f"{type(e).__name__}: {e}"
                )
