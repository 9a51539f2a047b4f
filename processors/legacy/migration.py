"""`livedash migrate-legacy`: a livedash-node database becomes companies and sessions here.

Companies are registered first (one transaction); then the sessions, one transaction per batch of
legacy units. A session's id is uuid5(company id, external id), so a run finds the sessions an
earlier run stored (the status projection, caught up first, answers for a whole batch at once; the
event store's optimistic concurrency catches anything it has not seen) and skips them: a second
run adds nothing and an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from uuid import UUID

from domain.session import session_id_for
from processors.clock import Clock
from processors.legacy.companies import Companies
from processors.legacy.csv_row import external_id_of
from processors.legacy.options import LegacyMigrationError, MigrationOptions
from processors.legacy.records import LegacyCompany, UnitKey
from processors.legacy.report import MigrationReport, finish_report
from processors.legacy.source import LegacySource
from processors.legacy.tally import Tally
from processors.legacy.worker import BatchWorker, Target, init_worker, run_in_worker
from projections.queries import stage_statuses
from projections.runner import ProjectionRunner
from projections.store import analyze
from store.application import LiveDashApp


def _known_states(runner: ProjectionRunner | None, ids: list[UUID]) -> dict[UUID, dict[str, str]]:
    """Stage statuses of the sessions that already exist, read in bulk from the projection."""
    if runner is None or not ids:
        return {}
    with runner.engine.connect() as conn:
        return stage_statuses(conn, ids)


class LegacyMigration:
    """The driver: companies, then the batches (here or on worker processes), then the report."""

    def __init__(
        self,
        source: LegacySource,
        app: LiveDashApp | None,
        runner: ProjectionRunner | None,
        clock: Clock,
        options: MigrationOptions,
        dsn: str = "",
    ) -> None:
        """``app``/``runner`` may be None for a dry run against a store that does not exist yet."""
        self.source = source
        self.dsn = dsn
        self.app = app
        self.runner = runner
        self.clock = clock
        self.options = options
        if options.batch_size < 1:
            raise LegacyMigrationError("the batch size must be at least 1")
        self.now = clock()
        self.tally = Tally()
        self.report_names: dict[str, str] = {}
        self.report = MigrationReport(
            source=source.dsn,
            variant=source.variant,
            dry_run=options.dry_run,
            timezone=options.timezone,
        )

    # --------------------------------------------------------------------- run
    def run(self) -> MigrationReport:
        started = time.perf_counter()
        self.report.warnings.extend(self.source.info.notes)
        registration = Companies(self.source, self.app, self.options, self.report)
        companies = registration.select()
        company_ids = registration.register(companies)
        self.report_names = registration.report_names
        if self.runner is not None and not self.options.dry_run:
            catch_up(self.runner)
        total = self.source.count_units([c.id for c in companies])
        self.report.sessions.total = total
        if self.options.on_total:
            self.options.on_total(total)
        target = Target(
            dsn=self.dsn,
            database_url=self.options.database_url,
            timezone=self.options.timezone,
            now=self.now,
            dry_run=self.options.dry_run,
            companies={c.id: (c, company_ids[c.id], self.report_names[c.id]) for c in companies},
            master_key=self.app.data_keys.master_key if self.app and self.app.data_keys else None,
        )
        workers = self._workers(total)
        self.report.workers = workers
        batches = self._batches(companies, target)
        if workers <= 1:
            worker = BatchWorker(target, self.source, self.app)
            for number, (keys, size) in enumerate(batches, start=1):
                if keys:
                    self.tally.merge(worker.run(keys))
                self._batch_done(number, size)
        else:
            self._run_parallel(batches, target, workers)
        self.report.seconds = round(time.perf_counter() - started, 3)
        if self.runner is not None and not self.options.dry_run and self.options.catch_up:
            t = time.perf_counter()
            catch_up(self.runner)
            self.report.projection_seconds = round(time.perf_counter() - t, 3)
        finish_report(self.report, self.tally)
        return self.report

    def _workers(self, total: int) -> int:
        o = self.options
        if o.workers is not None:
            return max(1, o.workers) if o.database_url or o.dry_run else 1
        big = total >= 10 * o.batch_size
        scheme = (o.database_url or "").split("://", 1)[0].split("+")[0].lower()
        postgres = scheme in ("postgres", "postgresql")
        return min(2, os.cpu_count() or 1) if big and (postgres or o.dry_run) else 1

    def _batches(
        self, companies: Sequence[LegacyCompany], target: Target
    ) -> Iterator[tuple[list[UnitKey], int]]:
        """Each batch's keys still to migrate (and its size): the sessions an earlier run
        stored are counted here and left out."""
        for keys in self.source.unit_keys(companies, self.options.batch_size):
            fresh: list[UnitKey] = []
            ids: list[UUID] = []
            seen: set[UUID] = set()
            for key in keys:
                _, company_id, name = target.companies[key[2]]
                sid = session_id_for(company_id, external_id_of(key[0], key[3], key[1])[0])
                if sid in seen:
                    self.tally.not_migrated_unit(key, name, "duplicate external id in the company")
                    continue
                seen.add(sid)
                fresh.append(key)
                ids.append(sid)
            known = _known_states(self.runner, ids)
            todo = []
            for key, sid in zip(fresh, ids, strict=True):
                if sid in known:
                    self.tally.already_migrated += 1
                    self.tally.add_states(known[sid])
                else:
                    todo.append(key)
            yield todo, len(keys)

    def _run_parallel(
        self, batches: Iterator[tuple[list[UnitKey], int]], target: Target, workers: int
    ) -> None:
        """Batches on worker processes (each its own connections), at most two per worker in
        flight; the CPU work of building and encoding events is what limits a migration."""
        context = multiprocessing.get_context("spawn")
        number = 0
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=init_worker, initargs=(target,)
        ) as pool:
            flying: dict[Future[Tally], int] = {}
            for keys, size in batches:
                while len(flying) >= 2 * workers:
                    number = self._collect(flying, number)
                if keys:
                    flying[pool.submit(run_in_worker, keys)] = size
                else:
                    number += 1
                    self._batch_done(number, size)
            while flying:
                number = self._collect(flying, number)

    def _collect(self, flying: dict[Future[Tally], int], number: int) -> int:
        done, _ = wait(list(flying), return_when=FIRST_COMPLETED)
        for future in done:
            size = flying.pop(future)
            self.tally.merge(future.result())
            number += 1
            self._batch_done(number, size)
        return number

    def _batch_done(self, number: int, size: int) -> None:
        if self.options.on_progress:
            self.options.on_progress(size)
        if self.options.after_batch:
            self.options.after_batch(number)


def catch_up(runner: ProjectionRunner, pages: int = 25) -> int:
    """The projections brought up to date; on PostgreSQL in slices with ANALYZE in between.

    A migration fills empty projection tables with hundreds of thousands of rows in one go, and
    until PostgreSQL has statistics for them it looks rows up by key with sequential scans: at
    100 000 sessions the catch-up took ten minutes instead of two.
    """
    if runner.engine.dialect.name != "postgresql":
        return runner.catch_up()
    total = 0
    while True:
        applied = runner.catch_up(max_pages=pages)
        total += applied
        analyze(runner.engine)
        if not applied:
            return total


def migrate_legacy(
    dsn: str,
    app: LiveDashApp | None,
    runner: ProjectionRunner | None,
    clock: Clock,
    options: MigrationOptions,
) -> MigrationReport:
    with LegacySource(dsn) as source:
        return LegacyMigration(source, app, runner, clock, options, dsn).run()
