"""The processing daemon: one loop that claims due stages, runs them on bounded pools and
writes the outcomes back with a group commit.

Work is found two ways. Edge-triggered: the loop keeps the status projection caught up and
every page it applies names the next candidates (a completed stage N makes N+1 a candidate).
Level-triggered: every few seconds it asks the projection what is due (PENDING and ready,
retries whose time has come, leases that expired), so a missed event, a crash or a restart
never strands a session. The claim itself is an optimistic-concurrency append of
`StageStarted`: if two daemons race, one insert fails and that daemon moves on.

Unattended operation: a claim's lease is short and kept alive by a heartbeat
(`LeaseExtended`, in batches) while its work waits or runs, so a dead daemon's work is taken
over within about one lease and a slow model call never loses its claim. Work that never
started is handed back (`StageReleased`) without using an attempt. Every paid model request
is stored before it is sent and its answer before anything else happens with it. When the
database goes away the daemon keeps what it has in memory, starts nothing new, and writes it
all when the database returns.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from queue import Empty, SimpleQueue
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Recording

from domain.company import Company
from domain.errors import DomainError
from domain.payloads import AIRequestIntent, AIUsage
from domain.session import LEASE_EXPIRED, Session
from domain.stages import WORKER_STAGES, Stage, Status
from processors.clock import Clock
from processors.runtime.heap import daemon_heap
from processors.runtime.outage import is_database_unavailable
from processors.runtime.reporting import Reporter
from processors.runtime.retry import RetryPolicy
from processors.runtime.workpool import WorkPool
from processors.stages.base import StageError, StageProcessor, WorkContext, WorkReleased
from projections.runner import Event, ProjectionRunner
from projections.status import Known, StatusProjection, known
from projections.work import due_work, next_wakeup, running_elsewhere
from store.application import LiveDashApp

STATUS = StatusProjection.name

LEASE_MARGIN = 2.0
"""Queued work whose lease has less than this left (its heartbeat failed) is not started."""


@dataclass(frozen=True)
class StageConfig:
    concurrency: int = 8
    timeout: float = 60.0
    """How long one attempt may run (a model call, a download) before it is given up."""
    lease_seconds: float = 30.0
    """How long a claim holds without a heartbeat: a dead daemon's work is taken over after
    about this long. Live work renews it every third of it, however long it runs."""
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    queue_depth: int = 32
    """Claimed work that may wait in the pool's queue beyond the running slots. Deep queues
    make a fast stage's turns bigger (and its per-session cost smaller); the heartbeat keeps
    queued claims alive, and a stop hands them back unstarted."""

    @property
    def max_in_flight(self) -> int:
        """Running plus queued claims: a fast stage (parsing takes a millisecond) must not
        wait a whole loop turn for its next batch, so at least `queue_depth` wait in line."""
        return self.concurrency + max(self.concurrency, self.queue_depth)

    @property
    def heartbeat(self) -> float:
        return self.lease_seconds / 3

    @property
    def lease_margin(self) -> float:
        return min(LEASE_MARGIN, self.lease_seconds / 4)

    def __post_init__(self) -> None:
        if self.lease_seconds < 1:
            raise ValueError("a lease must be at least 1s")


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
    """The reports' projections are kept up every this often; the status one every turn, or
    one turn late while only this daemon writes (``projection_defer``)."""
    claim_batch: int = 500
    until_idle: bool = False
    idle_horizon: float = 60.0
    grace_seconds: float = 30.0
    tune_gc: bool = True
    """Collect garbage less often while running (see processors/runtime/heap.py)."""
    projection_defer: int = 1
    """Turns the status projection may wait with this daemon's own events while no one else
    writes: one page then carries two turns, and a stage started in one and finished in the
    next is one row write, not two."""
    intent_wait: float = 30.0
    """How long a worker waits for its request's intent to be stored before it gives up the
    request unsent."""
    usage_wait: float = 10.0
    """How long a worker waits for its paid answer to be stored before it goes on; the answer
    stays with the daemon, which stores it as soon as the database allows."""
    reconnect_max: float = 10.0
    """Longest pause between tries while the database is away."""
    outage_log_interval: float = 30.0

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
    """The claim's lease on the monotonic clock; the heartbeat moves it on."""
    gate: Callable[[InFlight], str | None] | None = None
    """Why the work must not start now (stopping, database away, lease lapsing), if so."""
    lease_margin: float = LEASE_MARGIN

    @property
    def deadline(self) -> float:
        return (self.started if self.started is not None else time.monotonic()) + self.timeout

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        why = self.gate(self) if self.gate is not None else None
        if why is not None:
            raise WorkReleased(why)
        self.started = time.monotonic()
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
    released: dict[str, int] = field(default_factory=dict)
    lost_races: int = 0
    retries_later: int = 0
    next_retry_at: datetime | None = None
    stopped_by: str = "idle"
    outages: int = 0
    unsaved_at_exit: int = 0
    """Outcomes and paid answers still unstored when the daemon gave up waiting at exit."""


@dataclass
class _AICall:
    """A paid request's intent (before sending) or its answer (on arrival), for the loop to
    store; ``done`` tells the waiting worker it is stored."""

    key: tuple[UUID, Stage]
    attempt: int
    intent: AIRequestIntent | None = None
    usage: AIUsage | None = None
    done: Future[None] = field(default_factory=Future)
    fresh: bool = False
    """Load the session anew (another writer got there first)."""


@dataclass
class _Write:
    """Aggregates with events to store, and what to do once they are (or lost a race)."""

    sessions: list[Session]
    after: Callable[[set[UUID]], None]


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
        self.ai_calls: SimpleQueue[_AICall] = SimpleQueue()
        self._ai_backlog: list[_AICall] = []
        """Calls taken from the queue but not yet applied (the database went away)."""
        self.candidates: dict[Stage, OrderedDict[UUID, None]] = {
            s: OrderedDict() for s in self.processors
        }
        self.in_flight: dict[tuple[UUID, Stage], InFlight] = {}
        self.pools = {
            s: WorkPool(config.for_stage(s).concurrency, f"ld-{s.value}") for s in self.processors
        }
        self.companies: dict[UUID, Company] = {}
        self.summary = DaemonSummary()
        self._stopping = False
        self._offline_since: float | None = None
        self._retry_at = 0.0
        self._backoff = 0.5
        self._last_outage_log = 0.0
        self._writes: list[_Write] = []
        """Stored together by ``_flush``; kept across a database outage."""
        self._lost: list[Outcome] = []
        """Outcomes whose session another writer changed first: applied anew next turn."""
        self._recheck: list[InFlight] = []
        """Flights whose heartbeat lost a race: is the claim still theirs?"""
        self._last_level = 0.0
        self._last_others = 0.0
        self._next_heartbeat = 0.0
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

    @property
    def offline(self) -> bool:
        return self._offline_since is not None

    def run(self) -> DaemonSummary:
        if not self.config.tune_gc:
            return self._run()
        with daemon_heap():
            return self._run()

    def _run(self) -> DaemonSummary:
        self._loop_thread = threading.get_ident()
        self._guarded(self._refresh_companies)
        try:
            while True:
                self.wake.clear()
                began = time.monotonic()
                self._guarded(self._tick if not self.offline else self._reconnect)
                if self._stopping:
                    self._drain()
                    self.summary.stopped_by = "signal"
                    break
                if self.config.until_idle and not self.offline and self._guarded(self._idle):
                    break
                if self.wake.wait(self._wait_time()) and not self.offline:
                    # A turn lasts at least the batch window, so one transaction carries many
                    # outcomes; a turn that already took that long gathered them meanwhile.
                    rest = self.config.batch_window - (time.monotonic() - began)
                    if rest > 0:
                        time.sleep(rest)
        finally:
            self._finish()
        return self.summary

    def _finish(self) -> None:
        """Leaves the store and the projections up to date, as far as the database lets."""
        try:
            self._gather()  # paid answers and outcomes that came in during the last turn
            self._flush()
            self._project()  # our own last events from memory, then
            self.runner.catch_up()  # leave every projection up to date
        except Exception as e:
            if not is_database_unavailable(e):
                raise
            self.summary.unsaved_at_exit = len(self._ai_backlog) + sum(
                len(w.sessions) for w in self._writes
            )
            self.reporter.log(
                "exit_unsaved",
                error=_short(e),
                unsaved=self.summary.unsaved_at_exit,
                detail="the database is away: unstored outcomes are retried when their "
                "leases expire; unstored paid answers show in `costs` as answer lost",
            )
        finally:
            for pool in self.pools.values():
                pool.shutdown()
            self.runner.listeners.remove(self._on_page)
            self.reporter.finish(self.summary)

    def _guarded(self, step: Callable[[], Any]) -> Any:
        """Runs one step of the loop; a database outage is waited out, not obeyed."""
        try:
            return step()
        except Exception as e:
            if not is_database_unavailable(e):
                raise
            self._went_offline(e)
            return None

    def _wait_time(self) -> float:
        if self.offline:
            return max(0.01, self._retry_at - time.monotonic())
        wait = self.config.poll_interval
        now = time.monotonic()
        running = [f.deadline for f in self.in_flight.values() if f.started is not None]
        if running:
            wait = min(wait, max(0.01, min(running) - now))
        if self.in_flight:
            wait = min(wait, max(0.01, self._next_heartbeat - now))
        return wait

    # ------------------------------------------------------------- outages
    def _went_offline(self, error: BaseException) -> None:
        now = time.monotonic()
        if self._offline_since is None:
            self._offline_since = now
            self._last_outage_log = now
            self._backoff = 0.5
            self.summary.outages += 1
            self.reporter.log(
                "database_unavailable",
                error=_short(error),
                detail="no new work starts; outcomes and paid answers are kept until it returns",
            )
        elif now - self._last_outage_log >= self.config.outage_log_interval:
            self._last_outage_log = now
            self.reporter.log(
                "database_still_unavailable",
                seconds=round(now - self._offline_since),
                waiting_to_store=len(self._ai_backlog) + sum(len(w.sessions) for w in self._writes),
                error=_short(error),
            )
        self._retry_at = now + self._backoff
        self._backoff = min(self.config.reconnect_max, self._backoff * 2)

    def _reconnect(self) -> None:
        """One try while the database is away: what came in is applied in memory, then stored
        together; success ends the outage."""
        self._collect_results()
        self._gather()
        self._flush()
        self.runner.head()  # nothing to store: ask the log itself
        assert self._offline_since is not None
        away = time.monotonic() - self._offline_since
        self._offline_since = None
        self._last_level = 0.0  # what became due meanwhile is asked for at once
        self.reporter.log("database_back", seconds=round(away, 1))

    def _why_not_start(self, flight: InFlight | None = None) -> str | None:
        """Runs on worker threads: the reason queued work must not start now, if any."""
        if self._stopping:
            return "the daemon is stopping"
        if self._offline_since is not None:
            return "the database is unavailable: nothing starts that could not be recorded"
        if flight is not None and flight.lease_ends - time.monotonic() < flight.lease_margin:
            return "its lease was about to lapse before it started"
        return None

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
        self._gather()
        self._heartbeat()
        self._flush()
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
            busy = sum(1 for k in self.in_flight if k[1] is stage)
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
                except DomainError as e:
                    # Due by the projection, refused by the aggregate (it moved on meanwhile).
                    self.reporter.event("not_claimed", session, stage, None, str(e))
                    continue
        if not batch:
            return
        if self._status is not None:
            # The status projection applies these claims next turn without reading the rows.
            self._status.know(loaded)
        self._writes.append(
            _Write([s for s, _, _ in batch], functools.partial(self._claims_stored, batch))
        )
        self._flush()

    def _claims_stored(
        self, batch: list[tuple[Session, Stage, int | None]], saved: set[UUID]
    ) -> None:
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
        flight = InFlight(
            session,
            stage,
            attempt,
            cfg.timeout,
            gate=self._why_not_start,
            lease_margin=cfg.lease_margin,
        )
        lease = session.stages[stage].lease_expires_at
        if lease is not None:
            flight.lease_ends = time.monotonic() + (lease - self.clock()).total_seconds()
        try:
            inputs = processor.prepare(session, company)
        except Exception as e:  # a bug must cost one stage, not the daemon
            flight.future.set_exception(e)
        else:
            key = (session.id, stage)
            ctx = WorkContext(
                record_usage=functools.partial(self._usage_arrived, key, attempt),
                before_request=functools.partial(self._request_intent, key, attempt),
            )
            flight.future = self.pools[stage].submit(flight.run, processor.run, inputs, ctx)
        self.in_flight[(session.id, stage)] = flight
        self.reporter.event("started", session, stage, attempt)
        # A weak reference: the future must not point back at the flight that holds it, or
        # every flight (with its session, transcript and parsed messages) is a cycle that
        # only the garbage collector frees - and the daemon runs it rarely (runtime/heap.py).
        flight.future.add_done_callback(functools.partial(self._done, weakref.ref(flight)))

    # -------------------------------------------------------- paid requests
    def _request_intent(
        self, key: tuple[UUID, Stage], attempt: int, intent: AIRequestIntent
    ) -> None:
        """Runs on a worker thread: returns once the intent is stored; raises WorkReleased
        when the request must not be sent."""
        why = self._why_not_start()
        if why is not None:
            raise WorkReleased(why)
        call = _AICall(key, attempt, intent=intent)
        self.ai_calls.put(call)
        self.wake.set()
        try:
            call.done.result(timeout=self.config.intent_wait)
        except FutureTimeout:
            if call.done.cancel():
                raise WorkReleased(
                    f"its request could not be recorded within {self.config.intent_wait:.0f}s; "
                    "not sent"
                ) from None
            call.done.result()  # being stored right now

    def _usage_arrived(self, key: tuple[UUID, Stage], attempt: int, usage: AIUsage) -> None:
        """Runs on a worker thread: returns once the paid answer is stored, or after
        ``usage_wait`` (the database is away: the daemon keeps it and stores it later)."""
        call = _AICall(key, attempt, usage=usage)
        self.ai_calls.put(call)
        self.wake.set()
        with contextlib.suppress(FutureTimeout):
            call.done.result(timeout=self.config.usage_wait)

    def _gather(self) -> None:
        """Applies the paid requests and answers that came in to their sessions, to be stored
        with this turn's write. Intents are refused while nothing can be recorded."""
        calls, self._ai_backlog = self._ai_backlog, []
        while True:
            try:
                calls.append(self.ai_calls.get_nowait())
            except Empty:
                break
        applied: list[_AICall] = []
        sessions: list[Session] = []
        for i, call in enumerate(calls):
            if call.intent is not None and call.done.running() is False:
                if self.offline or self._stopping:
                    if call.done.set_running_or_notify_cancel():
                        call.done.set_exception(WorkReleased(self._why_not_start() or "stopped"))
                    continue
                if not call.done.set_running_or_notify_cancel():
                    continue  # its worker gave up waiting: not sent, not recorded
                flight = self.in_flight.get(call.key)
                if flight is None or flight.attempt != call.attempt or flight.abandoned:
                    self._settle(call, WorkReleased("its attempt was given up"))
                    continue
            try:
                session = self._session_for(call)
            except Exception:
                self._ai_backlog.extend(calls[i:])
                raise
            if session is None:
                self._settle(call, WorkReleased("its session is gone"))
                continue
            if call.intent is not None and call.fresh:
                # Our last write of it lost a race, or its reply: stored already, send it;
                # the claim taken over or reset meanwhile, do not.
                state = session.stages[call.key[1]]
                if call.intent.client_request_id in session.ai_requests:
                    self._settle(call, None)
                    continue
                if state.status is not Status.IN_PROGRESS or state.attempt != call.attempt:
                    self._settle(call, WorkReleased("its claim was taken over"))
                    continue
            try:
                if call.intent is not None:
                    session.record_ai_request(call.key[1], call.attempt, call.intent)
                else:
                    assert call.usage is not None
                    session.record_ai_usage(call.key[1], call.attempt, call.usage)
            except DomainError as e:
                self.reporter.log("ai_call_unrecorded", session=str(session.id), error=str(e))
                self._settle(call, WorkReleased(str(e)))
                continue
            applied.append(call)
            sessions.append(session)
        if applied:
            self._writes.append(
                _Write(sessions, functools.partial(self._ai_calls_stored, applied, sessions))
            )

    def _session_for(self, call: _AICall) -> Session | None:
        flight = self.in_flight.get(call.key)
        if flight is not None and not call.fresh:
            return flight.session
        return self.app.find_session(call.key[0])

    def _ai_calls_stored(
        self, calls: list[_AICall], sessions: list[Session], saved: set[UUID]
    ) -> None:
        for call, session in zip(calls, sessions, strict=True):
            if session.id in saved:
                self._settle(call, None)
            else:  # applied anew to the latest state next turn (it may be stored already)
                call.fresh = True
                self._ai_backlog.append(call)
                self.reporter.log("ai_call_retried", session=str(session.id))

    @staticmethod
    def _settle(call: _AICall, error: BaseException | None) -> None:
        if call.done.done():
            return
        if not call.done.running() and not call.done.set_running_or_notify_cancel():
            return
        if error is None:
            call.done.set_result(None)
        else:
            call.done.set_exception(error)

    # ------------------------------------------------------------ heartbeat
    def _heartbeat(self) -> None:
        """Extends, in one write, the leases of live claims that have used a third of them."""
        now_mono = time.monotonic()
        if now_mono < self._next_heartbeat or not self.in_flight:
            return
        self._next_heartbeat = now_mono + min(
            self.config.for_stage(s).heartbeat for s in self.processors
        )
        now = self.clock()
        extended: list[InFlight] = []
        for flight in self.in_flight.values():
            cfg = self.config.for_stage(flight.stage)
            if flight.abandoned or flight.lease_ends - now_mono > cfg.lease_seconds - cfg.heartbeat:
                continue
            try:
                flight.session.extend_lease(
                    flight.stage, flight.attempt, now + timedelta(seconds=cfg.lease_seconds), now
                )
            except DomainError:
                continue
            extended.append(flight)
        self._recheck_claims()
        if extended:
            self._writes.append(
                _Write(
                    [f.session for f in extended],
                    functools.partial(self._leases_stored, extended, now_mono),
                )
            )

    def _leases_stored(self, flights: list[InFlight], at: float, saved: set[UUID]) -> None:
        for flight in flights:
            if flight.session.id in saved:
                lease = self.config.for_stage(flight.stage).lease_seconds
                flight.lease_ends = max(flight.lease_ends, at + lease)
            else:
                self._recheck.append(flight)

    def _recheck_claims(self) -> None:
        """A heartbeat lost a race: if the attempt is still ours, go on with the latest state;
        if someone took it over (or reset it), give it up."""
        flights, self._recheck = self._recheck, []
        for flight in flights:
            if self.in_flight.get((flight.session.id, flight.stage)) is not flight:
                continue
            fresh = self.app.find_session(flight.session.id)
            state = fresh.stages[flight.stage] if fresh is not None else None
            if (
                fresh is not None
                and state is not None
                and state.status is Status.IN_PROGRESS
                and state.attempt == flight.attempt
            ):
                flight.session = fresh
                continue
            self._give_up(flight)
            self.reporter.event(
                "claim_lost", flight.session, flight.stage, flight.attempt, "taken over"
            )

    def _give_up(self, flight: InFlight) -> None:
        flight.abandoned = True
        self.in_flight.pop((flight.session.id, flight.stage), None)
        self.pools[flight.stage].abandon(flight.future)

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
        # A worker hands in its paid responses before its outcome: gathered before the
        # outcomes, the usages of every outcome above are written just before it.
        self._gather()
        now_mono = time.monotonic()
        for flight in list(self.in_flight.values()):
            running = flight.started is not None and not flight.future.done()
            if running and now_mono > flight.deadline:
                flight.abandoned = True
                self.pools[flight.stage].abandon(flight.future)  # its slot is free at once
                timeout = self.config.for_stage(flight.stage).timeout
                outcomes.append(
                    Outcome(
                        flight, error=StageError("timeout", f"stage took over {timeout:.0f}s", True)
                    )
                )
        if self._lost:
            self._retry_lost()
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
            if not self.offline and not self._stopping:
                chained.extend(self._chain(flight.session, flight.stage, now, chained))
        if applied:
            self._writes.append(
                _Write(
                    [o.flight.session for o in applied],
                    functools.partial(self._outcomes_stored, applied, chained),
                )
            )
        self._flush()

    def _outcomes_stored(
        self,
        applied: list[Outcome],
        chained: list[tuple[Session, Stage, int | None]],
        saved: set[UUID],
    ) -> None:
        for outcome in applied:
            if outcome.flight.session.id not in saved:
                self._lost.append(outcome)
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
        if isinstance(error, WorkReleased):
            session.release_stage(flight.stage, flight.attempt, str(error), now)
            return
        if not isinstance(error, StageError):
            error = StageError("internal_error", f"{type(error).__name__}: {error}", retryable=True)
        policy = self.config.for_stage(flight.stage).policy
        failures = session.stages[flight.stage].retry_count + 1
        retry_at = policy.retry_at(failures, now, error.retry_after) if error.retryable else None
        message = error.message
        if error.retryable and retry_at is None:
            message += f" (retries exhausted: {failures} failed attempts)"
        if retry_at is not None and error.error_type == LEASE_EXPIRED:
            retry_at = now  # the worker died, not the target: nothing to back off from
        session.fail_stage(
            flight.stage,
            flight.attempt,
            error.error_type,
            message,
            error.retryable,
            retry_at,
            now,
        )

    def _retry_lost(self) -> None:
        """Someone else appended to these sessions first: apply the outcomes to the latest
        state (an attempt taken over meanwhile is stale and dropped)."""
        lost, self._lost = self._lost, []
        now = self.clock()
        retried: list[Outcome] = []
        for i, outcome in enumerate(lost):
            flight = outcome.flight
            try:
                fresh = self.app.find_session(flight.session.id)
            except Exception:
                self._lost.extend(lost[i:])
                raise
            if fresh is None:
                continue
            try:
                self._apply(fresh, outcome, now)
            except DomainError as e:
                self.summary.lost_races += 1
                self.reporter.event("stale", fresh, flight.stage, flight.attempt, str(e))
                continue
            flight.session = fresh
            retried.append(outcome)
        if retried:
            self._writes.append(
                _Write(
                    [o.flight.session for o in retried],
                    functools.partial(self._lost_stored, retried),
                )
            )

    def _lost_stored(self, retried: list[Outcome], saved: set[UUID]) -> None:
        for outcome in retried:
            if outcome.flight.session.id in saved:
                self._report(outcome)
            else:
                self.summary.lost_races += 1
                flight = outcome.flight
                self.reporter.event("stale", flight.session, flight.stage, flight.attempt, "lost")

    def _report(self, outcome: Outcome) -> None:
        flight = outcome.flight
        state = flight.session.stages[flight.stage]
        if state.status is Status.COMPLETED:
            self._count(self.summary.completed, flight.stage)
            self.reporter.event("completed", flight.session, flight.stage, flight.attempt)
        elif state.status is Status.PENDING:
            self._count(self.summary.released, flight.stage)
            self.reporter.event(
                "released", flight.session, flight.stage, flight.attempt, state.note or ""
            )
        else:
            self._count(self.summary.failed, flight.stage)
            detail = f"{state.error_type}: {state.error_message}"
            if state.retry_at:
                detail += f" (retry at {state.retry_at:%H:%M:%S})"
            self.reporter.event("failed", flight.session, flight.stage, flight.attempt, detail)

    def _flush(self) -> None:
        """Group commit: everything this turn changed, in one transaction. When the database
        is away nothing is lost: the events stay pending on their aggregates and the writes
        wait for the next try."""
        if not self._writes:
            return
        writes, self._writes = self._writes, []
        aggregates: list[Session] = []
        seen: set[int] = set()
        for write in writes:
            for session in write.sessions:
                if id(session) not in seen:
                    seen.add(id(session))
                    aggregates.append(session)
        clean = {s.id for s in aggregates if not s.pending_events}
        try:
            result = self.app.save_batch(aggregates)
        except BaseException:
            self._writes[:0] = writes
            raise
        self._own.extend(result.recordings)
        lost = {a.id for a in result.lost}
        saved = (result.saved_ids | clean) - lost
        for write in writes:
            write.after(saved)

    def _save(self, sessions: Sequence[Session]) -> set[UUID]:
        """Stores these sessions (with anything else waiting) now; the ids that were stored."""
        saved: set[UUID] = set()
        self._writes.append(_Write(list(sessions), saved.update))
        self._flush()
        return saved & {s.id for s in sessions}

    @staticmethod
    def _count(counter: dict[str, int], stage: Stage) -> None:
        counter[stage.value] = counter.get(stage.value, 0) + 1

    # ---------------------------------------------------------- stopping
    def _drain(self) -> None:
        """Graceful stop: queued claims are handed back at once (no attempt used), no new
        request or fetch starts, and running work may finish within the grace period."""
        deadline = time.monotonic() + self.config.grace_seconds
        released: list[Outcome] = []
        for flight in list(self.in_flight.values()):
            if flight.started is None and flight.future.cancel():
                released.append(Outcome(flight, error=WorkReleased("the daemon is stopping")))
        if released:
            self._guarded(lambda: self._record(released))
        while (
            self.in_flight or self._writes or self._paid_calls_pending()
        ) and time.monotonic() < deadline:
            self.wake.wait(0.1 if not self.offline else min(1.0, self._wait_time()))
            self.wake.clear()
            self._guarded(self._collect_results if not self.offline else self._reconnect)
            if not self.offline:
                self._guarded(self._flush)
        # Whatever is still running keeps its lease; it expires and is retried elsewhere.

    def _paid_calls_pending(self) -> bool:
        """Model calls given up at the stage's timeout still run on their threads (the client
        has its own timeout): their answer, if it comes, is paid and must be stored."""
        pool = self.pools.get(Stage.AI_ANALYSIS)
        return pool is not None and pool.stuck > 0

    def _idle(self) -> bool:
        if self.in_flight or any(self.candidates.values()) or not self.ai_calls.empty():
            return False
        if self._paid_calls_pending():
            return False  # a given-up model call may still bring a paid answer to store
        if self._writes or self._lost or self._ai_backlog:
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


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def _next_candidate(event: Event, now: datetime) -> Stage | None:
    if isinstance(event, Session.Imported | Session.SourceRowChanged):
        return Stage.TRANSCRIPT_FETCH
    stage: Stage | None = getattr(event, "stage", None)
    if stage is None:
        return None
    if isinstance(event, Session.StageCompleted | Session.StageSkipped):
        return stage.next
    if isinstance(event, Session.StageReset | Session.StageReleased):
        return stage
    if (
        isinstance(event, Session.StageFailed)
        and event.retry_at is not None
        and event.retry_at <= now
    ):
        return stage
    return None
