"""The processing daemon: one loop that claims due stages, runs them on bounded pools and
writes the outcomes back with a group commit.

Work is found two ways. Edge-triggered: the loop keeps the status projection caught up and
every page it applies names the next candidates (a completed stage N makes N+1 a candidate).
Level-triggered: every few seconds it asks the projection what is due (PENDING and ready,
retries whose time has come, leases that expired), so a missed event, a crash or a restart
never strands a session. The claim itself is an optimistic-concurrency append of
`StageStarted`: if two daemons race, one insert fails and that daemon moves on.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from queue import Empty, SimpleQueue
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Recording

from domain.application import LiveDashApp
from domain.company import Company
from domain.errors import DomainError
from domain.payloads import AIUsage
from domain.session import LEASE_EXPIRED, Session
from domain.stages import WORKER_STAGES, Stage, Status
from processors.base import StageError, StageProcessor, WorkContext
from processors.clock import Clock
from processors.heap import daemon_heap
from processors.reporting import Reporter
from processors.retry import RetryPolicy
from projections.runner import Event, ProjectionRunner
from projections.status import Known, StatusProjection, known
from projections.work import due_work, next_wakeup, running_elsewhere

STATUS = StatusProjection.name


@dataclass(frozen=True)
class StageConfig:
    concurrency: int = 8
    timeout: float = 60.0
    lease_seconds: float = 120.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    queue_depth: int = 32
    """Claimed work that may wait in the pool's queue beyond the running slots. Deep queues
    make a fast stage's turns bigger (and its per-session cost smaller); work that waited so
    long that its lease would end before its timeout is not started but handed back."""

    @property
    def max_in_flight(self) -> int:
        """Running plus queued claims: a fast stage (parsing takes a millisecond) must not
        wait a whole loop turn for its next batch, so at least `queue_depth` wait in line."""
        return self.concurrency + max(self.concurrency, self.queue_depth)

    def __post_init__(self) -> None:
        if self.timeout >= self.lease_seconds:
            raise ValueError(
                f"a stage's timeout ({self.timeout}s) must end before its lease "
                f"({self.lease_seconds}s)"
            )


@dataclass
class DaemonConfig:
    worker_id: str
    stages: tuple[Stage, ...] = WORKER_STAGES
    stage_configs: dict[Stage, StageConfig] = field(default_factory=dict)
    level_interval: float = 5.0
    poll_interval: float = 1.0
    batch_window: float = 0.01
    """After a wake-up, wait this long for more outcomes, so one transaction carries many."""
    other_projections_interval: float = 1.0
    """The reports' projections are kept up every this often; the status one every turn."""
    claim_batch: int = 500
    until_idle: bool = False
    idle_horizon: float = 60.0
    grace_seconds: float = 30.0
    tune_gc: bool = True
    """Collect garbage less often while running (see processors/heap.py)."""
    projection_defer: int = 1
    """Turns the status projection may wait with this daemon's own events while no one else
    writes: one page then carries two turns, and a stage started in one and finished in the
    next is one row write, not two."""

    def for_stage(self, stage: Stage) -> StageConfig:
        return self.stage_configs.get(stage) or StageConfig()


@dataclass
class InFlight:
    session: Session
    stage: Stage
    attempt: int
    timeout: float
    future: Future[Any] = field(default_factory=Future)
    started: float | None = None
    """When a pool thread began the work: queued work cannot time out, running work can."""
    abandoned: bool = False
    lease_ends: float = float("inf")
    """The claim's lease on the monotonic clock."""

    @property
    def deadline(self) -> float:
        return (self.started if self.started is not None else time.monotonic()) + self.timeout

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.started = time.monotonic()
        if self.started + self.timeout > self.lease_ends:
            # Started now, it could outlive its lease and run beside the daemon that takes
            # the stage over: hand it back instead, to be claimed afresh at once.
            raise StageError(
                LEASE_EXPIRED,
                f"waited in the queue until its lease had {self.lease_ends - self.started:.0f}s "
                f"left, less than the stage's {self.timeout:.0f}s timeout; not started",
                retryable=True,
            )
        return fn(*args)


@dataclass
class Outcome:
    flight: InFlight
    output: Any = None
    error: BaseException | None = None


@dataclass
class DaemonSummary:
    completed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    lost_races: int = 0
    retries_later: int = 0
    next_retry_at: datetime | None = None
    stopped_by: str = "idle"


class Daemon:
    def __init__(
        self,
        app: LiveDashApp,
        runner: ProjectionRunner,
        processors: dict[Stage, StageProcessor],
        config: DaemonConfig,
        clock: Clock,
        reporter: Reporter,
        scheduled: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.app = app
        self.runner = runner
        self.processors = {s: p for s, p in processors.items() if s in config.stages}
        self.config = config
        self.clock = clock
        self.reporter = reporter
        self.scheduled = list(scheduled)
        self.wake = threading.Event()
        self.results: SimpleQueue[Outcome] = SimpleQueue()
        self.usages: SimpleQueue[tuple[tuple[UUID, Stage], int, AIUsage]] = SimpleQueue()
        self.candidates: dict[Stage, OrderedDict[UUID, None]] = {
            s: OrderedDict() for s in self.processors
        }
        self.in_flight: dict[tuple[UUID, Stage], InFlight] = {}
        self.pools = {
            s: ThreadPoolExecutor(
                config.for_stage(s).concurrency, thread_name_prefix=f"ld-{s.value}"
            )
            for s in self.processors
        }
        self.companies: dict[UUID, Company] = {}
        self.zombies: dict[Stage, set[Future[Any]]] = {s: set() for s in self.processors}
        """Work given up at its timeout whose thread still runs: it holds a pool slot."""
        self.summary = DaemonSummary()
        self._stopping = False
        self._last_level = 0.0
        self._last_others = 0.0
        self._loop_thread: int | None = None
        self._own: list[Recording[UUID]] = []
        """What this daemon's saves stored since the status projection last took it: it
        projects them from memory."""
        self._deferred = 0
        self._pages: SimpleQueue[tuple[str, Sequence[Event]]] = SimpleQueue()
        """Pages applied by any thread sharing the runner (a scheduled import's too): the
        loop turns them into candidates itself, so only its thread touches the queues."""
        runner.listeners.append(self._on_page)
        status = runner.projections.get(STATUS)
        self._status = status if isinstance(status, StatusProjection) else None

    # ------------------------------------------------------------- control
    def request_stop(self) -> None:
        self._stopping = True
        self.wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def run(self) -> DaemonSummary:
        if not self.config.tune_gc:
            return self._run()
        with daemon_heap():
            return self._run()

    def _run(self) -> DaemonSummary:
        self._loop_thread = threading.get_ident()
        self._refresh_companies()
        try:
            while True:
                self.wake.clear()
                began = time.monotonic()
                self._tick()
                if self._stopping:
                    self._drain()
                    self.summary.stopped_by = "signal"
                    break
                if self.config.until_idle and self._idle():
                    break
                if self.wake.wait(self._wait_time()):
                    # A turn lasts at least the batch window, so one transaction carries many
                    # outcomes; a turn that already took that long gathered them meanwhile.
                    rest = self.config.batch_window - (time.monotonic() - began)
                    if rest > 0:
                        time.sleep(rest)
        finally:
            self._record_usages()  # paid answers that came in during the last turn
            self._project()  # our own last events from memory, then
            self.runner.catch_up()  # leave every projection up to date
            for pool in self.pools.values():
                pool.shutdown(wait=False, cancel_futures=True)
            self.runner.listeners.remove(self._on_page)
            self.reporter.finish(self.summary)
        return self.summary

    def _wait_time(self) -> float:
        wait = self.config.poll_interval
        running = [f.deadline for f in self.in_flight.values() if f.started is not None]
        if running:
            wait = min(wait, max(0.01, min(running) - time.monotonic()))
        return wait

    # ---------------------------------------------------------------- loop
    def _tick(self) -> None:
        for job in self.scheduled:
            job()
        if not self._defer_projection():
            self._project()
        now_mono = time.monotonic()
        if now_mono - self._last_others >= self.config.other_projections_interval:
            self._last_others = now_mono
            self.runner.catch_up([n for n in self.runner.projections if n != STATUS])
        self._take_pages()
        self._collect_results()
        if not self._stopping:
            now_mono = time.monotonic()
            if now_mono - self._last_level >= self.config.level_interval:
                self._last_level = now_mono
                if self._own:  # what is due is asked of the projection: bring it up to date
                    self._project()
                    self._take_pages()
                self._refresh_companies()
                self._level_trigger()
            self._claim()
        self.reporter.tick(self._snapshot())

    def _project(self) -> None:
        """Brings the status projection up to date: this daemon's own events from memory,
        anyone else's from the log."""
        own, self._own = self._own, []
        self._deferred = 0
        if own:
            self.runner.apply_recorded(STATUS, own)  # else the catch-up below reads them
        self.runner.catch_up([STATUS])

    def _defer_projection(self) -> bool:
        """True when the projection may wait a turn: only this daemon wrote since it was last
        brought up to date (the log ends with our last event), and it has not waited long."""
        if not self._own or self._deferred >= self.config.projection_defer:
            return False
        if self.runner.head() != self._own[-1].notification.id:
            return False  # another writer's events: their sessions must not wait
        self._deferred += 1
        return True

    def _snapshot(self) -> dict[str, Any]:
        return {
            "in_flight": {
                s.value: sum(1 for k in self.in_flight if k[1] is s) for s in self.processors
            },
            "queued": {s.value: len(q) for s, q in self.candidates.items()},
            "completed": dict(self.summary.completed),
            "failed": dict(self.summary.failed),
            "skipped": dict(self.summary.skipped),
        }

    def _on_page(self, projection: str, events: Sequence[Event]) -> None:
        """Runs on whichever thread applied the page."""
        self._pages.put((projection, events))
        if threading.get_ident() != self._loop_thread:
            self.wake.set()  # the loop takes its own pages in the same turn

    def _take_pages(self) -> None:
        while True:
            try:
                projection, events = self._pages.get_nowait()
            except Empty:
                return
            self._candidates_from(projection, events)

    def _candidates_from(self, projection: str, events: Sequence[Event]) -> None:
        """Edge trigger: the events the projection just applied name the next candidates."""
        if projection == "companies":
            self._refresh_companies()
            return
        now = self.clock()
        for event in events:
            if isinstance(event, Session.StageStarted | Session.StageSkipped):
                # Claimed already (by this daemon's chaining or by another daemon): a queued
                # candidate would only cost a load to find it is not due, and would pile up.
                queue = self.candidates.get(event.stage)
                if queue is not None:
                    queue.pop(event.originator_id, None)
            stage = _next_candidate(event, now)
            if stage is not None and stage in self.candidates:
                self.candidates[stage][event.originator_id] = None

    def _level_trigger(self) -> None:
        now = self.clock()
        active = [cid for cid, c in self.companies.items() if c.is_active]
        if not active:
            return
        with self.runner.engine.connect() as conn:
            for stage in self.processors:
                limit = self.config.claim_batch
                for sid in due_work(conn, stage, now, active, limit):
                    self.candidates[stage][sid] = None

    def _refresh_companies(self) -> None:
        from projections.schema import companies

        with self.runner.engine.connect() as conn:
            ids = [
                r[0]
                for r in conn.execute(companies.select().with_only_columns(companies.c.company_id))
            ]
        self.companies = {cid: self.app.get_company(cid) for cid in ids}

    # --------------------------------------------------------------- claim
    def _claim(self) -> None:
        now = self.clock()
        lease_for = {
            s: timedelta(seconds=self.config.for_stage(s).lease_seconds) for s in self.processors
        }
        batch: list[tuple[Session, Stage, int | None]] = []
        loaded: list[Known] = []
        for stage, queue in self.candidates.items():
            self.zombies[stage] = {f for f in self.zombies[stage] if not f.done()}
            busy = len(self.zombies[stage]) + sum(1 for k in self.in_flight if k[1] is stage)
            free = self.config.for_stage(stage).max_in_flight - busy
            picked: list[UUID] = []
            while (
                queue and len(picked) < max(0, free) * 2 and len(picked) < self.config.claim_batch
            ):
                sid, _ = queue.popitem(last=False)
                if (sid, stage) not in self.in_flight:
                    picked.append(sid)
            if not picked:
                continue
            taken = 0
            for session in self.app.get_sessions(picked):
                company = self.companies.get(session.company_id)
                if company is None or not company.is_active or not session.is_due(stage, now):
                    continue
                reason = session.skip_reason(stage)
                if self._status is not None and (reason or taken < free):
                    loaded.append(known(session))  # before the command changes it
                try:
                    if reason and session.stages[stage].status is Status.PENDING:
                        session.skip_stage(stage, reason, now)
                        batch.append((session, stage, None))
                    elif taken < free:
                        attempt = session.start_stage(
                            stage, self.config.worker_id, now + lease_for[stage], now
                        )
                        batch.append((session, stage, attempt))
                        taken += 1
                    else:
                        queue[session.id] = None  # no room now: keep it for the next round
                except DomainError:
                    continue
        if not batch:
            return
        if self._status is not None:
            # The status projection applies these claims next turn without reading the rows.
            self._status.know(loaded)
        saved = self._save([s for s, _, _ in batch])
        for session, stage, claimed in batch:
            if session.id not in saved:
                self.summary.lost_races += 1
                continue
            if claimed is None:
                self._count(self.summary.skipped, stage)
                self.reporter.event("skipped", session, stage, None)
                continue
            self._submit(session, stage, claimed)

    def _submit(self, session: Session, stage: Stage, attempt: int) -> None:
        processor = self.processors[stage]
        cfg = self.config.for_stage(stage)
        company = self.companies[session.company_id]
        flight = InFlight(session, stage, attempt, cfg.timeout)
        lease = session.stages[stage].lease_expires_at
        if lease is not None:
            flight.lease_ends = time.monotonic() + (lease - self.clock()).total_seconds()
        try:
            inputs = processor.prepare(session, company)
        except Exception as e:  # a bug must cost one stage, not the daemon
            flight.future.set_exception(e)
        else:
            key = (session.id, stage)
            ctx = WorkContext(record_usage=functools.partial(self._usage_arrived, key, attempt))
            flight.future = self.pools[stage].submit(flight.run, processor.run, inputs, ctx)
        self.in_flight[(session.id, stage)] = flight
        self.reporter.event("started", session, stage, attempt)
        # A weak reference: the future must not point back at the flight that holds it, or
        # every flight (with its session, transcript and parsed messages) is a cycle that
        # only the garbage collector frees - and the daemon runs it rarely (processors/heap.py).
        flight.future.add_done_callback(functools.partial(self._done, weakref.ref(flight)))

    def _usage_arrived(self, key: tuple[UUID, Stage], attempt: int, usage: AIUsage) -> None:
        """Called on a worker thread: the daemon thread records it on its next turn."""
        self.usages.put((key, attempt, usage))
        self.wake.set()

    def _record_usages(self) -> None:
        """Paid responses are stored as soon as they arrive, in one transaction per turn."""
        touched: dict[UUID, Session] = {}
        while True:
            try:
                key, attempt, usage = self.usages.get_nowait()
            except Empty:
                break
            flight = self.in_flight.get(key)
            session = flight.session if flight else self.app.find_session(key[0])
            if session is None:
                continue
            try:
                session.record_ai_usage(key[1], attempt, usage)
            except DomainError as e:
                self.reporter.log("usage_unrecorded", session=str(session.id), error=str(e))
                continue
            touched[session.id] = session
        if touched:
            result = self.app.save_batch(list(touched.values()))
            for lost in result.lost:
                self.reporter.log("usage_conflict", session=str(lost.id))

    def _done(self, ref: weakref.ref[InFlight], future: Future[Any]) -> None:
        flight = ref()
        if flight is None or future.cancelled():
            return  # abandoned at its timeout and dropped already
        error = future.exception()
        self.results.put(Outcome(flight, None if error else future.result(), error))
        self.wake.set()

    # ------------------------------------------------------------- results
    def _collect_results(self) -> int:
        outcomes: list[Outcome] = []
        while True:
            try:
                outcome = self.results.get_nowait()
            except Empty:
                break
            if outcome.flight.abandoned:
                continue  # its timeout was already recorded; the late answer is dropped
            outcomes.append(outcome)
        # A worker hands in its paid responses before its outcome: drained after the outcomes,
        # the usages of every outcome above are here, and are written just before it.
        self._record_usages()
        now_mono = time.monotonic()
        for flight in list(self.in_flight.values()):
            running = flight.started is not None and not flight.future.done()
            if running and now_mono > flight.deadline:
                flight.abandoned = True
                if not flight.future.cancel():  # still running: its thread stays busy
                    self.zombies[flight.stage].add(flight.future)
                timeout = self.config.for_stage(flight.stage).timeout
                outcomes.append(
                    Outcome(
                        flight, error=StageError("timeout", f"stage took over {timeout:.0f}s", True)
                    )
                )
        if outcomes:
            self._record(outcomes)
        return len(outcomes)

    def _record(self, outcomes: list[Outcome]) -> None:
        """Writes a turn's outcomes in one transaction, together with the claims of the next
        stage of the same sessions: a hand-off inside one daemon costs no extra round trip."""
        now = self.clock()
        applied: list[Outcome] = []
        chained: list[tuple[Session, Stage, int | None]] = []
        for outcome in outcomes:
            flight = outcome.flight
            self.in_flight.pop((flight.session.id, flight.stage), None)
            try:
                self._apply(flight.session, outcome, now)
            except DomainError as e:
                self.reporter.event("stale", flight.session, flight.stage, flight.attempt, str(e))
                continue
            applied.append(outcome)
            chained.extend(self._chain(flight.session, flight.stage, now, chained))
        saved = self._save([o.flight.session for o in applied])
        for outcome in applied:
            if outcome.flight.session.id not in saved:
                self._retry_lost(outcome, now)
                continue
            self._report(outcome)
        for session, stage, attempt in chained:
            if session.id not in saved:
                continue
            if attempt is None:
                self._count(self.summary.skipped, stage)
                self.reporter.event("skipped", session, stage, None)
            else:
                self._submit(session, stage, attempt)

    def _chain(
        self,
        session: Session,
        stage: Stage,
        now: datetime,
        planned: list[tuple[Session, Stage, int | None]],
    ) -> list[tuple[Session, Stage, int | None]]:
        """Starts (or skips) the stages after ``stage`` on the same aggregate, while they are
        ours to run, due, and there is room for them."""
        chain: list[tuple[Session, Stage, int | None]] = []
        company = self.companies.get(session.company_id)
        if company is None or not company.is_active:
            return chain
        nxt = stage.next
        while nxt is not None and nxt in self.processors and session.is_due(nxt, now):
            if session.skip_reason(nxt) and session.stages[nxt].status is Status.PENDING:
                session.skip_stage(nxt, session.skip_reason(nxt) or "", now)
                chain.append((session, nxt, None))
                nxt = nxt.next
                continue
            busy = sum(1 for k in self.in_flight if k[1] is nxt) + sum(
                1 for _, st, a in [*planned, *chain] if st is nxt and a is not None
            )
            if busy >= self.config.for_stage(nxt).max_in_flight:
                break  # the edge trigger brings it back when there is room
            lease = now + timedelta(seconds=self.config.for_stage(nxt).lease_seconds)
            chain.append(
                (session, nxt, session.start_stage(nxt, self.config.worker_id, lease, now))
            )
            break
        return chain

    def _apply(self, session: Session, outcome: Outcome, now: datetime) -> None:
        flight = outcome.flight
        if outcome.error is None:
            self.processors[flight.stage].record(session, flight.attempt, outcome.output, now)
            return
        error = outcome.error
        if not isinstance(error, StageError):
            error = StageError("internal_error", f"{type(error).__name__}: {error}", retryable=True)
        policy = self.config.for_stage(flight.stage).policy
        failures = session.stages[flight.stage].retry_count + 1
        retry_at = policy.retry_at(failures, now, error.retry_after) if error.retryable else None
        if retry_at is not None and error.error_type == LEASE_EXPIRED:
            retry_at = now  # the work never ran: nothing to back off from
        session.fail_stage(
            flight.stage,
            flight.attempt,
            error.error_type,
            error.message,
            error.retryable,
            retry_at,
            now,
        )

    def _retry_lost(self, outcome: Outcome, now: datetime) -> None:
        """Someone else appended to the session meanwhile: apply the outcome to the latest state."""
        flight = outcome.flight
        fresh = self.app.find_session(flight.session.id)
        if fresh is None:
            return
        try:
            self._apply(fresh, outcome, now)
            self.app.save(fresh)
        except (DomainError, IntegrityError) as e:
            self.summary.lost_races += 1
            self.reporter.event("stale", fresh, flight.stage, flight.attempt, str(e))
            return
        outcome.flight.session = fresh
        self._report(outcome)

    def _report(self, outcome: Outcome) -> None:
        flight = outcome.flight
        state = flight.session.stages[flight.stage]
        if state.status is Status.COMPLETED:
            self._count(self.summary.completed, flight.stage)
            self.reporter.event("completed", flight.session, flight.stage, flight.attempt)
        else:
            self._count(self.summary.failed, flight.stage)
            detail = f"{state.error_type}: {state.error_message}"
            if state.retry_at:
                detail += f" (retry at {state.retry_at:%H:%M:%S})"
            self.reporter.event("failed", flight.session, flight.stage, flight.attempt, detail)

    def _save(self, sessions: list[Session]) -> set[UUID]:
        """Group commit: one transaction for all; the sessions that lost a race are left out."""
        result = self.app.save_batch(sessions)
        self._own.extend(result.recordings)
        return result.saved_ids

    @staticmethod
    def _count(counter: dict[str, int], stage: Stage) -> None:
        counter[stage.value] = counter.get(stage.value, 0) + 1

    # ---------------------------------------------------------- stopping
    def _drain(self) -> None:
        """Graceful stop: no new claims; in-flight work may finish within the grace period."""
        deadline = time.monotonic() + self.config.grace_seconds
        while self.in_flight and time.monotonic() < deadline:
            self.wake.wait(0.1)
            self.wake.clear()
            self._collect_results()
        # Whatever is still running keeps its lease; it expires and is retried elsewhere.

    def _idle(self) -> bool:
        if self.in_flight or any(self.candidates.values()) or not self.usages.empty():
            return False
        if self._own:  # the projection has yet to see our last events (and their candidates)
            self._project()
            self._take_pages()
            if any(self.candidates.values()):
                self.wake.set()  # work for the next turn, not a reason to sleep first
                return False
        if not self._pages.empty():
            return False
        if any(getattr(job, "busy", False) for job in self.scheduled):
            return False
        now = self.clock()
        active = [cid for cid, c in self.companies.items() if c.is_active]
        with self.runner.engine.connect() as conn:
            for stage in self.processors:
                if due_work(conn, stage, now, active, 1):
                    self._last_level = 0.0
                    return False
            if running_elsewhere(conn, list(self.processors), now, active):
                return False
            wake_at = next_wakeup(conn, list(self.processors), now, active)
        if wake_at is not None and wake_at <= now + timedelta(seconds=self.config.idle_horizon):
            return False
        self.summary.next_retry_at = wake_at
        self.summary.stopped_by = "idle"
        return True


def _next_candidate(event: Event, now: datetime) -> Stage | None:
    if isinstance(event, Session.Imported | Session.SourceRowChanged):
        return Stage.TRANSCRIPT_FETCH
    stage: Stage | None = getattr(event, "stage", None)
    if stage is None:
        return None
    if isinstance(event, Session.StageCompleted | Session.StageSkipped):
        return stage.next
    if isinstance(event, Session.StageReset):
        return stage
    if (
        isinstance(event, Session.StageFailed)
        and event.retry_at is not None
        and event.retry_at <= now
    ):
        return stage
    return None
