"""The processing daemon: one loop that claims due stages, runs them on bounded pools and
writes the outcomes back with a group commit.

Work is found two ways. Edge-triggered: the daemon follows the log through its local feed
(projections/local_feed.py), and each event names the next candidate (a completed stage N
makes N+1 one). Level-triggered: every few seconds it asks the status projection what is due
(PENDING and ready, retries whose time has come, leases that expired), so a missed event, a
crash or a restart never strands a session. The claim itself is an optimistic-concurrency
append of `StageStarted`: if two daemons race, one insert fails and that daemon moves on.

Unattended operation: a claim's lease is short and kept alive by a heartbeat
(`LeaseExtended`, in batches) while its work waits or runs, so a dead daemon's work is taken
over within about one lease and a slow model call never loses its claim. Work that never
started is handed back (`StageReleased`) without using an attempt. Every paid model request
is stored before it is sent and its answer before anything else happens with it
(runtime/paid_calls.py). When the database goes away the daemon keeps what it has in memory,
starts nothing new, and writes it all when the database returns (runtime/outage.py).
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta
from queue import Empty, SimpleQueue
from typing import Any
from uuid import UUID

from domain.company import Company
from domain.errors import DomainError
from domain.session import Session
from domain.stages import Stage, Status
from processors.clock import Clock
from processors.runtime.budgets import PAID_STAGES, BudgetGate
from processors.runtime.candidates import Candidates
from processors.runtime.config import DaemonConfig
from processors.runtime.fleet import FleetMember
from processors.runtime.flight import InFlight, Outcome, per_stage
from processors.runtime.heap import daemon_heap
from processors.runtime.heartbeat import Heartbeat
from processors.runtime.idle import daemon_idle
from processors.runtime.metrics import LoopObserver
from processors.runtime.outage import Outage, is_database_unavailable, short_error
from processors.runtime.outcomes import apply_outcome, report_outcome
from processors.runtime.paid_calls import PaidCalls
from processors.runtime.pauses import StageGate, claim_room, unpaused_stages
from processors.runtime.reporting import Reporter, progress
from processors.runtime.summary import DaemonSummary, count
from processors.runtime.workpool import WorkPool
from processors.runtime.writes import WriteQueue
from processors.stages.base import StageError, StageProcessor, WorkContext, WorkReleased
from projections.local_feed import LocalFeed
from projections.partitions import PartitionKeeper
from projections.runner import ProjectionRunner
from projections.work import WorkQueries
from projections.workers import Presence
from store.application import LiveDashApp

Planned = tuple[Session, Stage, int | None]
"""A claim (with its attempt) or a skip (None) applied to a session, waiting to be stored."""


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
        presence: Presence | None = None,
        keeper: PartitionKeeper | None = None,
        metrics: LoopObserver | None = None,
    ) -> None:
        self.app = app
        self.fleet = FleetMember(presence, keeper, config.fleet_heartbeat)
        """Its row in the register and, in a fleet on PostgreSQL, its partitions."""
        self.processors = {s: p for s, p in processors.items() if s in config.stages}
        self.config = config
        self.clock = clock
        self.reporter = reporter
        self.scheduled = list(scheduled)
        self.wake = threading.Event()
        self.results: SimpleQueue[Outcome] = SimpleQueue()
        self.feed = LocalFeed(runner, config.projection_defer, on_news=self.wake.set)
        """The daemon's one window on the read side, with `work` (its queries)."""
        self.work = WorkQueries(runner.engine)
        self.metrics = metrics or LoopObserver()
        """Told what each commit stored and how each turn went (runtime/metrics.py)."""
        self.writes = WriteQueue(app, self.feed.stored, self.metrics.stored)
        self.paid = PaidCalls(self.wake, self._why_not_start, config.intent_wait, config.usage_wait)
        self.outage = Outage(config.reconnect_max, config.outage_log_interval)
        self.candidates = Candidates(self.processors, config.company_fairness)
        self.in_flight: dict[tuple[UUID, Stage], InFlight] = {}
        self.gate = StageGate(
            app, config, list(self.processors), clock, reporter.log, self.in_flight
        )
        """Operators' pauses and the circuit breakers (runtime/pauses.py)."""
        self.pools = {
            s: WorkPool(config.for_stage(s).concurrency, f"ld-{s.value}") for s in self.processors
        }
        self.companies: dict[UUID, Company] = {}
        self.budgets = BudgetGate(runner.engine, app, config.installation_budget, reporter)
        self.gate.holds = self.budgets.why_wait  # a reached budget holds work as a pause does
        self.summary = DaemonSummary()
        self._stopping = False
        self._lost: list[Outcome] = []
        """Outcomes whose session another writer changed first: applied anew next turn."""
        self.heartbeat = Heartbeat(
            config,
            list(self.processors),
            clock,
            self.writes,
            app.find_session,
            self._give_up,
            reporter,
        )
        self._last_level = 0.0
        self._last_others = 0.0

    # ------------------------------------------------------------- control
    def request_stop(self) -> None:
        self._stopping = True
        self.wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def offline(self) -> bool:
        return self.outage.offline

    def run(self) -> DaemonSummary:
        if not self.config.tune_gc:
            return self._run()
        with daemon_heap():
            return self._run()

    def _run(self) -> DaemonSummary:
        self.feed.own_thread()
        self._guarded(self.fleet.join)
        self._guarded(self._fleet_beat)
        self._guarded(self._refresh_companies)
        try:
            while True:
                self.wake.clear()
                began = time.monotonic()
                self._guarded(self._tick if not self.offline else self._reconnect)
                self.metrics.turn(time.monotonic() - began)
                if self._stopping:
                    self._drain()
                    self.summary.stopped_by = "signal"
                    break
                if self.config.until_idle and not self.offline and self._guarded(self.idle):
                    break
                if self.wake.wait(self._wait_time()) and not self.offline:
                    # A turn lasts at least the batch window, so one transaction carries many
                    # outcomes; a turn that already took that long gathered them meanwhile.
                    rest = self.config.batch_window - (time.monotonic() - began)
                    if rest > 0:
                        time.sleep(rest)
        except BaseException:
            self.summary.stopped_by = "error"
            raise
        finally:
            self._finish()
        return self.summary

    def _finish(self) -> None:
        """Leaves the store and the projections up to date, as far as the database lets."""
        try:
            self._gather()  # paid answers and outcomes that came in during the last turn
            self.writes.flush()
            self.feed.close()
        except Exception as e:
            if not is_database_unavailable(e):
                raise
            self.summary.unsaved_at_exit = len(self.paid.backlog) + self.writes.waiting
            self.reporter.log(
                "exit_unsaved",
                error=short_error(e),
                unsaved=self.summary.unsaved_at_exit,
                detail="the database is away: unstored outcomes are retried when their "
                "leases expire; unstored paid answers show in `costs` as answer lost",
            )
        finally:
            self.feed.detach()
            self.fleet.leave(self.summary.stopped_by)
            for pool in self.pools.values():
                pool.shutdown()
            self.reporter.finish(self.summary)

    # ---------------------------------------------------------------- fleet
    def _fleet_beat(self) -> None:
        change = self.fleet.beat(
            (sid for sid, _ in self.in_flight),
            per_stage(self.in_flight, self.processors),
            sum(self.summary.completed.values()),
        )
        if change is None:
            return
        self.candidates.keep_only(self.fleet.mine)
        self._hand_back(
            lambda flight: not self.fleet.mine(flight.session.id), "its partition moves"
        )
        if change.taken or change.released:
            self._last_level = 0.0  # new partitions: ask what is due in them at once
            self.reporter.log(
                "partitions",
                held=len(change.held),
                taken=len(change.taken),
                released=len(change.released),
                live_daemons=change.live,
                share=change.share,
            )

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
        now = time.monotonic()
        if self.offline:
            return max(0.01, self.outage.retry_at - now)
        wait = self.config.poll_interval
        running = [f.deadline for f in self.in_flight.values() if f.started is not None]
        if running:
            wait = min(wait, max(0.01, min(running) - now))
        if self.in_flight:
            wait = min(wait, max(0.01, self.heartbeat.next_at - now))
        return wait

    # ------------------------------------------------------------- outages
    def _went_offline(self, error: BaseException) -> None:
        waiting = len(self.paid.backlog) + self.writes.waiting
        if self.outage.report(error, time.monotonic(), waiting, self.reporter.log):
            self.summary.outages += 1

    def _reconnect(self) -> None:
        """One try while the database is away: what came in is applied in memory, then stored
        together; success ends the outage."""
        self._collect_results()
        self._gather()
        self.writes.flush()
        self.feed.head()  # nothing to store: ask the log itself
        away = self.outage.ended(time.monotonic())
        self._last_level = 0.0  # what became due meanwhile is asked for at once
        self.reporter.log("database_back", seconds=round(away, 1))

    def _why_not_start(self, flight: InFlight | None = None) -> str | None:
        """Runs on worker threads: the reason queued work must not start now, if any."""
        if self._stopping:
            return "the daemon is stopping"
        if self.outage.offline:
            return "the database is unavailable: nothing starts that could not be recorded"
        if flight is not None and flight.lease_ends - time.monotonic() < flight.lease_margin:
            return "its lease was about to lapse before it started"
        if flight is None:
            return None
        return self.gate.why_wait_for(flight.stage, flight.session)

    # ---------------------------------------------------------------- loop
    def _tick(self) -> None:
        for job in self.scheduled:
            job()
        self.feed.advance()
        now_mono = time.monotonic()
        if now_mono - self._last_others >= self.config.other_projections_interval:
            self._last_others = now_mono
            self.feed.catch_up_others()
        if self.feed.changed("companies"):
            self._refresh_companies()
        self.follow_log()
        self._collect_results()
        self._gather()
        self.heartbeat.beat(self.in_flight)
        self.writes.flush()
        self.gate.flush()
        if not self._stopping:
            now_mono = time.monotonic()
            if now_mono - self._last_level >= self.config.level_interval:
                self._last_level = now_mono
                if self.feed.unprojected:  # what is due is asked of the projection
                    self.feed.advance(now=True)
                    self.follow_log()
                self._refresh_companies()
                self._level_trigger()
            self._claim()
        self._fleet_beat()
        in_flight = per_stage(self.in_flight, self.processors)
        snapshot = progress(in_flight, self.candidates.sizes(), self.summary)
        self.metrics.tick(snapshot)
        self.reporter.tick(snapshot)

    def follow_log(self) -> None:
        """Edge trigger: the events the status projection applied since the last turn (ours
        from memory, anyone else's from the log) name the next candidates."""
        news = self.feed.take()
        if news:
            mine = self.fleet.mine if self.fleet.partitioned else None
            self.candidates.follow(news, self.clock(), mine)

    def _active_companies(self) -> list[UUID]:
        return [cid for cid, c in self.companies.items() if c.is_active]

    def _level_trigger(self) -> None:
        found = self.work.due(
            unpaused_stages(self.gate, self.processors),
            self.clock(),
            self._active_companies(),
            self.config.claim_batch,
            self.fleet.working,
            self.config.company_fairness,
            {s: self.gate.held_origins(s) for s in self.gate.per_origin},
        )
        for stage, due in found.items():
            self.candidates.add_due(stage, due)

    def _refresh_companies(self) -> None:
        ids = list(self.work.company_statuses())
        self.companies = {cid: self.app.get_company(cid) for cid in ids}
        self.gate.refresh()  # the pipeline's pauses and breakers, as anyone recorded them
        self.budgets.refresh(self.companies, self.clock())

    # --------------------------------------------------------------- claim
    def _claim(self) -> None:
        now = self.clock()
        batch: list[Planned] = []
        unknown = self.candidates.unknown()
        if unknown:  # another writer's news: its companies, so each waits for its own turn
            self.candidates.learn(self.work.companies_of(unknown))
        if any(s in PAID_STAGES for s in self.candidates.stages()) or any(
            stage in PAID_STAGES for _, stage in self.in_flight
        ):  # queued claims are held back at their start too (`_why_not_start`)
            self.budgets.refresh_before_claims(self.companies, now)
        for stage in self.candidates.stages():
            cfg = self.config.for_stage(stage)
            free = cfg.max_in_flight - sum(1 for k in self.in_flight if k[1] is stage)
            free = claim_room(self.gate, self.candidates, stage, free)
            picked = self.candidates.take(
                stage, min(max(0, free) * 2, self.config.claim_batch), self.in_flight
            )
            if not picked:
                continue
            lease = now + timedelta(seconds=cfg.lease_seconds)
            taken = 0
            for session in self.app.get_sessions(picked):
                if not self.fleet.mine(session.id):
                    continue  # its partition went to another daemon meanwhile
                company = self.companies.get(session.company_id)
                if company is None or not company.is_active or not session.is_due(stage, now):
                    continue
                if self.gate.paused(stage, session.company_id) or not self.gate.admits(
                    stage, session
                ):
                    continue  # found again by the level trigger once resumed
                self.candidates.note(session.id, session.company_id)
                reason = session.skip_reason(stage)
                if reason or taken < free:
                    self.feed.about_to_change([session])  # before the command changes it
                try:
                    if reason and session.stages[stage].status is Status.PENDING:
                        session.skip_stage(stage, reason, now)
                        batch.append((session, stage, None))
                    elif taken < free:
                        attempt = session.start_stage(stage, self.config.worker_id, lease, now)
                        batch.append((session, stage, attempt))
                        self.gate.claimed(stage, session)
                        taken += 1
                    else:
                        # No room: the next round.
                        self.candidates.add(stage, [session.id], session.company_id)
                except DomainError as e:
                    # Due by the projection, refused by the aggregate (it moved on meanwhile).
                    self.reporter.event("not_claimed", session, stage, None, str(e))
        if not batch:
            return
        self.writes.add([s for s, _, _ in batch], functools.partial(self._claims_stored, batch))
        self.writes.flush()

    def _claims_stored(self, batch: list[Planned], saved: set[UUID]) -> None:
        for session, stage, claimed in batch:
            if session.id not in saved:
                self.summary.lost_races += 1
            else:
                self._started(session, stage, claimed)

    def _started(self, session: Session, stage: Stage, attempt: int | None) -> None:
        """A stored claim goes to its pool; a stored skip is reported."""
        if attempt is None:
            count(self.summary.skipped, stage)
            self.reporter.event("skipped", session, stage, None)
        else:
            self._submit(session, stage, attempt)

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
                record_usage=functools.partial(self.paid.usage_arrived, key, attempt),
                before_request=functools.partial(self.paid.request_intent, key, attempt),
            )
            flight.future = self.pools[stage].submit(flight.run, processor.run, inputs, ctx)
        self.in_flight[(session.id, stage)] = flight
        self.reporter.event("started", session, stage, attempt)
        # A weak reference: the future must not point back at the flight that holds it, or
        # every flight (with its session, transcript and parsed messages) is a cycle that
        # only the garbage collector frees - and the daemon runs it rarely (runtime/heap.py).
        flight.future.add_done_callback(functools.partial(self._done, weakref.ref(flight)))

    # -------------------------------------------------------- paid requests
    def _gather(self) -> None:
        """Applies the paid requests and answers that came in to their sessions, to be stored
        with this turn's write. Intents are refused while nothing can be recorded."""
        refusing = None
        if self.offline or self._stopping:
            refusing = self._why_not_start() or "stopped"
        log = self.reporter.log
        applied = self.paid.apply(self.in_flight, self.app.find_session, refusing, log)
        if applied:
            self.writes.add(
                [s for _, s in applied], functools.partial(self.paid.stored, applied, log)
            )

    # ------------------------------------------------------------ flights
    def _give_up(self, flight: InFlight) -> None:
        flight.abandoned = True
        self.in_flight.pop(flight.key, None)
        self.pools[flight.stage].abandon(flight.future)

    def _done(self, ref: weakref.ref[InFlight], future: Future[Any]) -> None:
        flight = ref()
        if flight is None or future.cancelled():
            return  # abandoned at its timeout and dropped already
        error = future.exception()
        if not flight.abandoned:  # here, on its thread: a tripped breaker stops its next
            self.gate.observe(flight.stage, flight.session, error)
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
                late = StageError("timeout", f"stage took over {timeout:.0f}s", True)
                self.gate.observe(flight.stage, flight.session, late)
                outcomes.append(Outcome(flight, error=late))
        if self._lost:
            self._retry_lost()
        if outcomes:
            self._record(outcomes)
        return len(outcomes)

    def _apply(self, session: Session, outcome: Outcome, now: datetime) -> None:
        stage = outcome.flight.stage
        apply_outcome(session, outcome, self.processors[stage], self.config.for_stage(stage), now)

    def _record(self, outcomes: list[Outcome]) -> None:
        """Writes a turn's outcomes in one transaction, together with the claims of the next
        stage of the same sessions: a hand-off inside one daemon costs no extra round trip."""
        now = self.clock()
        applied: list[Outcome] = []
        chained: list[Planned] = []
        for outcome in outcomes:
            flight = outcome.flight
            self.in_flight.pop(flight.key, None)
            try:
                self._apply(flight.session, outcome, now)
            except DomainError as e:
                self.reporter.event("stale", flight.session, flight.stage, flight.attempt, str(e))
                continue
            applied.append(outcome)
            self.candidates.note(flight.session.id, flight.session.company_id)
            if not self.offline and not self._stopping:
                chained.extend(self._chain(flight.session, flight.stage, now, chained))
        if applied:
            self.writes.add(
                [o.flight.session for o in applied],
                functools.partial(self._outcomes_stored, applied, chained),
            )
        self.writes.flush()

    def _outcomes_stored(
        self, applied: list[Outcome], chained: list[Planned], saved: set[UUID]
    ) -> None:
        for outcome in applied:
            if outcome.flight.session.id not in saved:
                self._lost.append(outcome)
            else:
                report_outcome(outcome, self.summary, self.reporter)
        for session, stage, attempt in chained:
            if session.id in saved:
                self._started(session, stage, attempt)

    def _chain(
        self, session: Session, stage: Stage, now: datetime, planned: list[Planned]
    ) -> list[Planned]:
        """Starts (or skips) the stages after ``stage`` on the same aggregate, while they are
        ours to run, due, and there is room for them."""
        chain: list[Planned] = []
        company = self.companies.get(session.company_id)
        if company is None or not company.is_active:
            return chain
        if not self.fleet.mine(session.id):
            return chain  # its partition is being handed over: the new owner goes on
        nxt = stage.next
        while nxt is not None and nxt in self.processors and session.is_due(nxt, now):
            reason = session.skip_reason(nxt)
            if reason and session.stages[nxt].status is Status.PENDING:
                session.skip_stage(nxt, reason, now)
                chain.append((session, nxt, None))
                nxt = nxt.next
                continue
            busy = sum(1 for k in self.in_flight if k[1] is nxt) + sum(
                1 for _, st, a in [*planned, *chain] if st is nxt and a is not None
            )
            if busy >= self.config.for_stage(nxt).max_in_flight:
                break  # the edge trigger brings it back when there is room
            if not self.gate.open_for(nxt, session.company_id):
                break  # paused, or its breaker is not closed: claimed by `_claim` if ever
            if self.config.company_fairness and self.candidates.others_waiting(
                nxt, session.company_id
            ):
                break  # another company's turn first: the edge trigger queues this one
            lease = now + timedelta(seconds=self.config.for_stage(nxt).lease_seconds)
            chain.append(
                (session, nxt, session.start_stage(nxt, self.config.worker_id, lease, now))
            )
            break
        return chain

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
            self.writes.add(
                [o.flight.session for o in retried], functools.partial(self._lost_stored, retried)
            )

    def _lost_stored(self, retried: list[Outcome], saved: set[UUID]) -> None:
        for outcome in retried:
            if outcome.flight.session.id in saved:
                report_outcome(outcome, self.summary, self.reporter)
            else:
                self.summary.lost_races += 1
                flight = outcome.flight
                self.reporter.event("stale", flight.session, flight.stage, flight.attempt, "lost")

    # ---------------------------------------------------------- stopping
    def _drain(self) -> None:
        """Graceful stop: queued claims are handed back at once (no attempt used), no new
        request or fetch starts, and running work may finish within the grace period."""
        deadline = time.monotonic() + self.config.grace_seconds
        self._hand_back(lambda flight: True, "the daemon is stopping")
        while (
            self.in_flight or self.writes or self._paid_calls_pending()
        ) and time.monotonic() < deadline:
            self.wake.wait(0.1 if not self.offline else min(1.0, self._wait_time()))
            self.wake.clear()
            self._guarded(self._collect_results if not self.offline else self._reconnect)
            if not self.offline:
                self._guarded(self.writes.flush)
        # Whatever is still running keeps its lease; it expires and is retried elsewhere.

    def _hand_back(self, which: Callable[[InFlight], bool], why: str) -> None:
        """Claims still queued (not started) that ``which`` picks go back at once, without
        using an attempt: at a stop, and when a partition passes to a daemon that joined (it
        need not wait for this daemon's queue to drain: measured 4.45 s with two daemons)."""
        released = [
            Outcome(flight, error=WorkReleased(why))
            for flight in list(self.in_flight.values())
            if flight.started is None and which(flight) and flight.future.cancel()
        ]
        if released:
            self._guarded(lambda: self._record(released))

    def _paid_calls_pending(self) -> bool:
        """Model calls given up at the stage's timeout still run on their threads (the client
        has its own timeout): their answer, if it comes, is paid and must be stored."""
        pool = self.pools.get(Stage.AI_ANALYSIS)
        return pool is not None and pool.stuck > 0

    def idle(self) -> bool:
        """Nothing in hand, nothing due, nothing running elsewhere, no retry within the idle
        horizon: `run --until-idle` may stop (runtime/idle.py)."""
        return daemon_idle(self)
