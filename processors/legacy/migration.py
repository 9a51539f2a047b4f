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
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field
from sqlalchemy import select

from domain.company import Company, CompanyStatus, company_id_for
from domain.errors import CompanyError
from domain.session import Session, session_id_for
from domain.stages import STAGE_ORDER, STATUSES, Stage, Status
from processors.clock import Clock
from processors.legacy.build import (
    INTERRUPTED,
    Prepared,
    build_session,
    external_id_of,
    prepare,
)
from processors.legacy.records import LegacyCompany, LegacyUnit, UnitKey
from processors.legacy.source import LegacySource
from projections.runner import ProjectionRunner
from projections.schema import metadata as projection_metadata
from projections.schema import session_stage_status as sss
from store.application import LiveDashApp
from store.database_url import DatabaseConfig

MAX_PROBLEM_EXAMPLES = 100


class LegacyMigrationError(Exception):
    """A request the migration cannot carry out (an unknown company, a bad option)."""


class CompanyResult(BaseModel):
    name: str
    legacy_id: str
    company_id: UUID
    status: str
    action: str
    """"migrated" or "already present"."""


class ProblemExample(BaseModel):
    external_id: str
    company: str
    legacy_session_id: str | None
    legacy_import_id: str | None
    problems: list[str]


class SessionCounts(BaseModel):
    total: int = 0
    migrated: int = 0
    already_migrated: int = 0
    problems: int = 0
    """Sessions migrated with at least one problem recorded."""
    not_migrated: int = 0
    """Units that could not become a session at all (reported in ``problem_examples``)."""
    events: int = 0


class MigrationReport(BaseModel):
    source: str
    variant: str
    dry_run: bool
    timezone: str
    companies: dict[str, Any] = Field(default_factory=dict)
    sessions: SessionCounts = Field(default_factory=SessionCounts)
    stages: dict[str, dict[str, int]] = Field(default_factory=dict)
    final_status: list[str] = Field(default_factory=list)
    problem_kinds: dict[str, int] = Field(default_factory=dict)
    problem_examples: list[ProblemExample] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    workers: int = 1
    seconds: float = 0.0
    """Reading, building and storing the sessions."""
    projection_seconds: float = 0.0
    """Bringing the projections (the tables reports read) up to date afterwards."""


@dataclass
class MigrationOptions:
    company: str | None = None
    dry_run: bool = False
    batch_size: int = 1000
    timezone: str = "UTC"
    on_total: Callable[[int], None] | None = None
    on_progress: Callable[[int], None] | None = None
    after_batch: Callable[[int], None] | None = None
    """Called with the batch number after each batch is stored (tests interrupt a run here)."""
    catch_up: bool = True
    """Bring the projections up to date at the end, so the reports are ready at once."""
    database_url: str | None = None
    """The target's URL, for worker processes (each opens its own event store)."""
    workers: int | None = None
    """Worker processes; None: two for a large migration into PostgreSQL, else one."""


@dataclass
class _Tally:
    """What batches report back; picklable, so worker processes can send it and it merges."""

    migrated: int = 0
    already_migrated: int = 0
    problems: int = 0
    not_migrated: int = 0
    events: int = 0
    stages: dict[str, Counter[str]] = field(
        default_factory=lambda: {s.value: Counter() for s in STAGE_ORDER}
    )
    kinds: Counter[str] = field(default_factory=Counter)
    examples: list[ProblemExample] = field(default_factory=list)
    legacy_failed: Counter[str] = field(default_factory=Counter)
    interrupted: Counter[str] = field(default_factory=Counter)
    creation_skipped: int = 0
    start_differs: int = 0

    def merge(self, other: _Tally) -> None:
        self.migrated += other.migrated
        self.already_migrated += other.already_migrated
        self.problems += other.problems
        self.not_migrated += other.not_migrated
        self.events += other.events
        for stage, counts in other.stages.items():
            self.stages[stage].update(counts)
        self.kinds.update(other.kinds)
        room = MAX_PROBLEM_EXAMPLES - len(self.examples)
        self.examples.extend(other.examples[: max(0, room)])
        self.legacy_failed.update(other.legacy_failed)
        self.interrupted.update(other.interrupted)
        self.creation_skipped += other.creation_skipped
        self.start_differs += other.start_differs

    def add_states(self, states: dict[str, str]) -> None:
        for stage, status in states.items():
            self.stages[stage][status] += 1

    def add_session(self, session: Session) -> None:
        self.migrated += 1
        states = {s.value: session.stages[s].status.value for s in STAGE_ORDER}
        self.add_states(states)
        for stage in STAGE_ORDER:
            st = session.stages[stage]
            if st.status is Status.FAILED:
                if st.error_type == "interrupted":
                    self.interrupted[stage.value] += 1
                elif st.error_type == "legacy_failure":
                    self.legacy_failed[stage.value] += 1
        creation = session.stages[Stage.SESSION_CREATION]
        if creation.status is Status.SKIPPED:
            self.creation_skipped += 1

    def add_problems(self, p: Prepared, company: str) -> None:
        if p.start_differs:
            self.start_differs += 1
        if not p.problems:
            return
        self.problems += 1
        for problem in p.problems:
            self.kinds[problem.split(":", 1)[0]] += 1
        self._example(p.external_id, company, p.unit, list(p.problems))

    def not_migrated_unit(self, key: UnitKey, company: str, why: str) -> None:
        self.not_migrated += 1
        self.kinds["not_migrated"] += 1
        ext = external_id_of(key[0], key[3], key[1])[0]
        if len(self.examples) < MAX_PROBLEM_EXAMPLES:
            self.examples.append(
                ProblemExample(
                    external_id=ext,
                    company=company,
                    legacy_session_id=key[1],
                    legacy_import_id=key[0],
                    problems=[f"not_migrated: {why}"],
                )
            )

    def _example(self, ext: str, company: str, unit: LegacyUnit, problems: list[str]) -> None:
        if len(self.examples) < MAX_PROBLEM_EXAMPLES:
            self.examples.append(
                ProblemExample(
                    external_id=ext,
                    company=company,
                    legacy_session_id=unit.legacy_session_id,
                    legacy_import_id=unit.legacy_import_id,
                    problems=problems,
                )
            )


@dataclass(frozen=True)
class _Target:
    """Where a batch goes, in a form a worker process can be given."""

    dsn: str
    database_url: str | None
    timezone: str
    now: datetime
    dry_run: bool
    companies: dict[str, tuple[LegacyCompany, UUID, str]]
    """legacy company id -> (the legacy company, our company id, our name)."""


class BatchWorker:
    """Loads, builds and stores the units of one batch of keys (in this or a worker process)."""

    def __init__(self, target: _Target, source: LegacySource, app: LiveDashApp | None) -> None:
        self.target = target
        self.source = source
        self.app = app
        self.legacy = {cid: c for cid, (c, _, _) in target.companies.items()}

    def run(self, keys: Sequence[UnitKey]) -> _Tally:
        t = self.target
        tally = _Tally()
        units = self.source.load(keys, self.legacy)
        built: list[Session] = []
        for key, unit in zip(keys, units, strict=True):
            _, company_id, name = t.companies[key[2]]
            try:
                p = prepare(unit, t.timezone)
                session = build_session(p, company_id, t.timezone, t.now)
            except Exception as e:  # never abort the run for one bad unit
                tally.not_migrated_unit(key, name, f"{type(e).__name__}: {e}")
                continue
            tally.add_problems(p, name)
            built.append(session)
        if t.dry_run or not built:
            for session in built:
                tally.add_session(session)
            return tally
        assert self.app is not None
        result = self.app.save_batch(built)
        tally.events += result.events
        saved = result.saved_ids
        for session in built:
            if session.id in saved:
                tally.add_session(session)
        for lost in self.app.get_sessions([s.id for s in result.lost]):
            tally.already_migrated += 1
            tally.add_states({s.value: lost.stages[s].status.value for s in STAGE_ORDER})
        return tally


_WORKER: BatchWorker | None = None


def _init_worker(target: _Target) -> None:
    """In a spawned worker process: its own legacy connection and its own event store."""
    global _WORKER
    app = None
    if not target.dry_run and target.database_url:
        config = DatabaseConfig.from_url(target.database_url)
        app = LiveDashApp(env=config.eventsourcing_env(create_tables=False))
    _WORKER = BatchWorker(target, LegacySource(target.dsn), app)


def _run_in_worker(keys: list[UnitKey]) -> _Tally:
    assert _WORKER is not None
    return _WORKER.run(keys)


def _unique_names(companies: Sequence[LegacyCompany]) -> tuple[dict[str, str], list[str]]:
    """Our company names: unique regardless of case, as `company_id_for` needs."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    warnings = []
    for c in companies:
        name = c.name.strip() or f"legacy company {c.id[:8]}"
        if name.casefold() in taken:
            new = f"{name} (legacy {c.id[:8]})"
            warnings.append(
                f"two legacy companies are named {name!r}: the one with id {c.id} is "
                f"migrated as {new!r}"
            )
            name = new
        taken.add(name.casefold())
        names[c.id] = name
    return names, warnings


def _company_status(value: str | None) -> CompanyStatus:
    if not value:
        return CompanyStatus.ACTIVE
    try:
        return CompanyStatus.parse(value)
    except ValueError:
        return CompanyStatus.ACTIVE


def _known_states(runner: ProjectionRunner | None, ids: list[UUID]) -> dict[UUID, dict[str, str]]:
    """Stage statuses of the sessions that already exist, read in bulk from the projection."""
    found: dict[UUID, dict[str, str]] = {}
    if runner is None or not ids:
        return found
    with runner.engine.connect() as conn:
        for i in range(0, len(ids), 900):
            chunk = ids[i : i + 900]
            for sid, stage, status in conn.execute(
                select(sss.c.session_id, sss.c.stage, sss.c.status).where(
                    sss.c.session_id.in_(chunk)
                )
            ).all():
                found.setdefault(sid, {})[stage] = status
    return found


class LegacyMigration:
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
        self.tally = _Tally()
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
        companies = self._select_companies()
        company_ids = self._companies(companies)
        if self.runner is not None and not self.options.dry_run:
            catch_up(self.runner)
        total = self.source.count_units([c.id for c in companies])
        self.report.sessions.total = total
        if self.options.on_total:
            self.options.on_total(total)
        target = _Target(
            dsn=self.dsn,
            database_url=self.options.database_url,
            timezone=self.options.timezone,
            now=self.now,
            dry_run=self.options.dry_run,
            companies={c.id: (c, company_ids[c.id], self.report_names[c.id]) for c in companies},
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
        self._finish()
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
        self, companies: Sequence[LegacyCompany], target: _Target
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
        self, batches: Iterator[tuple[list[UnitKey], int]], target: _Target, workers: int
    ) -> None:
        """Batches on worker processes (each its own connections), at most two per worker in
        flight; the CPU work of building and encoding events is what limits a migration."""
        context = multiprocessing.get_context("spawn")
        number = 0
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(target,)
        ) as pool:
            flying: dict[Future[_Tally], int] = {}
            for keys, size in batches:
                while len(flying) >= 2 * workers:
                    number = self._collect(flying, number)
                if keys:
                    flying[pool.submit(_run_in_worker, keys)] = size
                else:
                    number += 1
                    self._batch_done(number, size)
            while flying:
                number = self._collect(flying, number)

    def _collect(self, flying: dict[Future[_Tally], int], number: int) -> int:
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

    # --------------------------------------------------------------- companies
    def _select_companies(self) -> list[LegacyCompany]:
        companies = self.source.companies()
        wanted = self.options.company
        if wanted is None:
            return companies
        chosen = [c for c in companies if c.name.strip().casefold() == wanted.strip().casefold()]
        if not chosen:
            known = ", ".join(sorted(c.name for c in companies)) or "none"
            raise LegacyMigrationError(
                f"no legacy company named {wanted!r} (the legacy database has: {known})"
            )
        return chosen

    def _companies(self, companies: Sequence[LegacyCompany]) -> dict[str, UUID]:
        names, warnings = _unique_names(self.source.companies())
        self.report_names = names
        self.report.warnings.extend(w for w in warnings if any(c.id in w for c in companies))
        ids: dict[str, UUID] = {}
        results: list[CompanyResult] = []
        new: list[Company] = []
        for c in companies:
            name = names[c.id]
            cid = company_id_for(name)
            ids[c.id] = cid
            status = _company_status(c.status)
            if c.status and status.value != c.status.upper():
                self.report.warnings.append(
                    f"company {name}: unknown legacy status {c.status!r}, migrated as ACTIVE"
                )
            existing = self._existing_company(cid)
            if existing is not None:
                results.append(
                    CompanyResult(
                        name=existing.name,
                        legacy_id=c.id,
                        company_id=cid,
                        status=existing.status.value,
                        action="already present",
                    )
                )
                status = existing.status
            else:
                csv_url = c.csv_url.strip()
                if not csv_url:
                    csv_url = f"legacy-company-{c.id}-has-no-csv-url"
                    self.report.warnings.append(
                        f"company {name}: the legacy company has no CSV URL; set one before "
                        "importing"
                    )
                try:
                    company = Company.register(
                        name,
                        csv_url,
                        c.created_at,
                        username=(c.username or "").strip() or None,
                        password_ref=None,
                        timezone=self.options.timezone,
                        status=status,
                    )
                except CompanyError as e:
                    raise LegacyMigrationError(f"company {name}: {e}") from None
                new.append(company)
                results.append(
                    CompanyResult(
                        name=name,
                        legacy_id=c.id,
                        company_id=cid,
                        status=status.value,
                        action="migrated",
                    )
                )
            if c.has_password:
                self.report.warnings.append(
                    f"set a credential reference for company {name}: the legacy password was "
                    "not copied"
                )
            if status is not CompanyStatus.ACTIVE:
                self.report.warnings.append(
                    f"company {name} is {status.value}: its sessions wait until "
                    f"`livedash company activate {name}`"
                )
        if new and not self.options.dry_run:
            assert self.app is not None
            result = self.app.save_batch(new)
            for lost in result.lost:
                assert isinstance(lost, Company)
                for r in results:
                    if r.company_id == lost.id:
                        r.action = "already present"
        self.report.companies = {
            "migrated": sum(1 for r in results if r.action == "migrated"),
            "already_present": sum(1 for r in results if r.action == "already present"),
            "details": [r.model_dump(mode="json") for r in results],
        }
        return ids

    def _existing_company(self, cid: UUID) -> Company | None:
        if self.app is None:
            return None
        try:
            return self.app.get_company(cid)
        except CompanyError:
            return None

    # ------------------------------------------------------------------- report
    def _finish(self) -> None:
        t = self.tally
        r = self.report
        r.sessions.migrated = t.migrated
        r.sessions.already_migrated = t.already_migrated
        r.sessions.problems = t.problems
        r.sessions.not_migrated = t.not_migrated
        r.sessions.events = t.events
        r.stages = {
            stage: {status.value: t.stages[stage][status.value] for status in STATUSES}
            for stage in t.stages
        }
        r.final_status = [final_status_line(stage, counts) for stage, counts in r.stages.items()]
        r.problem_kinds = dict(sorted(t.kinds.items()))
        r.problem_examples = t.examples
        for stage, n in t.interrupted.items():
            r.warnings.append(
                f"{n} session(s) had {stage} IN_PROGRESS in the legacy system: recorded FAILED "
                f"({INTERRUPTED}) and due for retry now, so `livedash run` takes them up"
            )
        for stage, n in t.legacy_failed.items():
            r.warnings.append(
                f"{n} session(s) had {stage} FAILED in the legacy system: kept FAILED with the "
                f"legacy message and not retried automatically; `livedash retry --stage {stage} "
                "--all-failed` runs them again"
            )
        if t.creation_skipped:
            r.warnings.append(
                f"{t.creation_skipped} session(s) had SESSION_CREATION SKIPPED in the legacy "
                "system (no transcript), so their AI_ANALYSIS and QUESTION_EXTRACTION cannot "
                "start; `livedash retry <session> --stage SESSION_CREATION` creates them without "
                "messages"
            )
        if t.start_differs:
            r.warnings.append(
                f"{t.start_differs} session(s): the raw start time read in {r.timezone} is not "
                "the legacy Session.startTime (the legacy server parsed it in its own local "
                "time); if that zone is not "
                f"{r.timezone}, migrate with --timezone set to it so a later CSV import sees the "
                "same rows"
            )


def catch_up(runner: ProjectionRunner, pages: int = 25) -> int:
    """The projections brought up to date; on PostgreSQL in slices with ANALYZE in between.

    A migration fills empty projection tables with hundreds of thousands of rows in one go, and
    until PostgreSQL has statistics for them it looks rows up by key with sequential scans: at
    100 000 sessions the catch-up took ten minutes instead of two.
    """
    if runner.engine.dialect.name != "postgresql":
        return runner.catch_up()
    tables = ", ".join(f'"{t.name}"' for t in projection_metadata.sorted_tables)
    total = 0
    while True:
        applied = runner.catch_up(max_pages=pages)
        total += applied
        with runner.engine.begin() as conn:
            conn.exec_driver_sql(f"ANALYZE {tables}")
        if not applied:
            return total


def final_status_line(stage: str, counts: dict[str, int]) -> str:
    """The original script's line, with failures (and anything in progress) added."""
    line = (
        f"{stage}: {counts.get('COMPLETED', 0)} completed, {counts.get('PENDING', 0)} pending, "
        f"{counts.get('SKIPPED', 0)} skipped, {counts.get('FAILED', 0)} failed"
    )
    if counts.get("IN_PROGRESS"):
        line += f", {counts['IN_PROGRESS']} in progress"
    return line


def migrate_legacy(
    dsn: str,
    app: LiveDashApp | None,
    runner: ProjectionRunner | None,
    clock: Clock,
    options: MigrationOptions,
) -> MigrationReport:
    with LegacySource(dsn) as source:
        return LegacyMigration(source, app, runner, clock, options, dsn).run()
