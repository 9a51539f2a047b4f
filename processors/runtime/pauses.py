"""The daemon's side of the pipeline's switches: operators' pauses and circuit breakers.

The switches are events on the Pipeline aggregate (domain/pipeline.py), read on every level
tick, so a pause or a breaker opened by anyone (an operator, another daemon of the fleet) holds
here within one tick. What the daemon asks:

- `why_wait`: must this stage's work for this company wait? Asked before a claim and again on
  the worker thread just before queued work starts, so a pause that arrives while work is
  queued hands it back unstarted (no attempt used); running work finishes.
- `room`: how many claims of a stage may be made now: all free slots while its breaker is
  closed, one (the probe) once this daemon holds the half-open breaker's probe, else none.

The breaker's window of recent attempts is this daemon's own (`observe`); when it trips, the
breaker opens here at once and the opening is recorded on the next `flush`, after which every
daemon waits. Transitions are recorded from the daemon's loop (`flush`), never while outcomes
are being stored, so a database that goes away costs no outcome.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.breaker import COUNTED_ERRORS, BreakerRules, BreakerState, RecentAttempts
from domain.pipeline import Pipeline, breaker_key
from domain.stages import Stage
from processors.clock import Clock
from processors.runtime.candidates import Candidates
from processors.runtime.config import DaemonConfig
from processors.stages.base import StageError
from projections.work import Standing, WorkQueries
from store.application import LiveDashApp

Change = Callable[[Pipeline], BreakerState | None]


class StageGate:
    def __init__(
        self,
        app: LiveDashApp,
        config: DaemonConfig,
        stages: Sequence[Stage],
        clock: Clock,
        log: Callable[..., None],
        in_flight: Mapping[tuple[UUID, Stage], Any],
    ) -> None:
        self.app = app
        self.worker = config.worker_id
        self.clock = clock
        self.log = log
        self.rules = config.circuit_breaker
        self.holds: Callable[[Stage, UUID], str | None] | None = None
        """Another reason work of a stage and company waits (the daemon's budget gate)."""
        self.providers = {
            s: p for s, p in config.providers.items() if s in stages and self.rules is not None
        }
        """The stages with a breaker, and the provider each one calls."""
        self.in_flight = in_flight
        self.stages = list(stages)
        self.view = Pipeline.start(clock())
        """The pipeline as last read, with this daemon's own changes not yet recorded."""
        self.windows: dict[Stage, RecentAttempts] = {}
        self.probes: dict[Stage, UUID | None] = {}
        """Stages whose probe this daemon holds: the session claimed for it (None: not yet)."""
        self._todo: list[tuple[Stage, Change]] = []
        self._lock = threading.RLock()
        """Outcomes are observed on the worker threads, as each attempt ends: a thread must
        not start its next queued attempt before the breaker its last one tripped is open."""

    # ------------------------------------------------------------ reading
    def refresh(self) -> None:
        """Records what this daemon decided, then reads what everyone decided (level tick)."""
        self.flush()
        self._adopt(self.app.pipeline(self.clock()))

    def _adopt(self, fresh: Pipeline) -> None:
        """Takes the stored pipeline as the view, with the changes not recorded yet applied
        to it; says what others changed."""
        with self._lock:
            for _, change in self._todo:
                change(fresh)
            old, self.view = self.view, fresh
            for stage, provider in self.providers.items():
                before, after = old.breaker(stage, provider), fresh.breaker(stage, provider)
                if after != before:
                    self.windows.pop(stage, None)  # a new phase: the old window says nothing
                    if after.phase != "half_open" or after.probe_by != self.worker:
                        self.probes.pop(stage, None)
                    by = fresh.breaker_by.get(breaker_key(stage, provider))
                    self._say(stage, provider, after, by)
        for key, pause in fresh.pauses.items():
            if key not in old.pauses:
                self.log("stage_paused", stage=pause.stage, company=pause.company,
                         actor=pause.actor, reason=pause.reason)  # fmt: skip
        for key, pause in old.pauses.items():
            if key not in fresh.pauses:
                self.log("stage_resumed", stage=pause.stage, company=pause.company)

    def _say(self, stage: Stage, provider: str, state: BreakerState, by: str | None) -> None:
        self.log(
            f"breaker_{state.phase}",
            stage=stage.value,
            provider=provider,
            reason=state.reason,
            cool_down=state.cool_down,
            reopens_at=state.reopens_at.isoformat() if state.reopens_at else None,
            by=by,
        )

    def paused_everywhere(self, stage: Stage) -> bool:
        return self.view.paused(stage) is not None

    def paused(self, stage: Stage, company_id: UUID) -> bool:
        """Paused by an operator, or held by another rule (``holds``: a reached budget)."""
        if self.view.paused(stage, company_id) is not None:
            return True
        return self.holds is not None and self.holds(stage, company_id) is not None

    def _breaker(self, stage: Stage) -> BreakerState | None:
        provider = self.providers.get(stage)
        return self.view.breaker(stage, provider) if provider is not None else None

    def why_wait(
        self, stage: Stage, company_id: UUID, session_id: UUID | None = None
    ) -> str | None:
        """Why work of ``stage`` for ``company_id`` must not start now, if it must not (also
        asked on worker threads)."""
        with self._lock:
            pause = self.view.paused(stage, company_id)
            if pause is not None:
                return f"{stage.value} paused by {pause.actor}: {pause.reason}"
            held = self.holds(stage, company_id) if self.holds is not None else None
            if held is not None:
                return held
            breaker = self._breaker(stage)
            if breaker is None or breaker.allows:
                return None
            if session_id is not None and self.probes.get(stage) == session_id:
                return None  # this daemon's probe
            return f"circuit breaker {breaker.phase.replace('_', '-')}: {breaker.reason}"

    def open_for(self, stage: Stage, company_id: UUID) -> bool:
        """May work start with no further question (the edge trigger's chained claims)?"""
        return self.why_wait(stage, company_id) is None

    # ------------------------------------------------------------ claiming
    def room(self, stage: Stage, free: int) -> int:
        """How many claims of ``stage`` may be made now. Takes the probe when it is due (one
        write; two daemons racing for it cannot both win)."""
        if free <= 0 or self.paused_everywhere(stage):
            return 0
        with self._lock:
            breaker = self._breaker(stage)
            if breaker is None or breaker.allows:
                return free
            assert self.rules is not None
            mine = breaker.phase == "half_open" and breaker.probe_by == self.worker
            if mine and stage in self.probes:
                probe = self.probes[stage]
                if probe is None:
                    return 1
                if (probe, stage) in self.in_flight:
                    return 0  # the probe is out
                self.probes[stage] = None  # its claim was lost or handed back: another session
                return 1
            if not breaker.probe_due(self.clock(), self.rules):
                return 0
        return 1 if self._take_probe(stage) else 0

    def _take_probe(self, stage: Stage) -> bool:
        assert self.rules is not None
        provider, rules, now = self.providers[stage], self.rules, self.clock()
        self.flush()
        fresh, granted = self.app.change_pipeline(
            lambda p: p.take_probe(stage, provider, self.worker, rules, now), now
        )
        with self._lock:
            self._adopt(fresh)
            if granted is None:
                return False
            self.probes[stage] = None
            return True

    def claimed(self, stage: Stage, session_id: UUID) -> None:
        """A claim of ``stage`` was made: the probe, if this daemon holds one unclaimed."""
        with self._lock:
            if stage in self.probes and self.probes[stage] is None:
                self.probes[stage] = session_id
                self.log("breaker_probe", stage=stage.value, session=str(session_id))

    # ------------------------------------------------------------ outcomes
    def observe(self, stage: Stage, session_id: UUID, error: BaseException | None) -> None:
        """An attempt ended (on its worker thread, or at its timeout): the probe's outcome
        decides the breaker; others fill the window while it is closed, and may open it."""
        provider = self.providers.get(stage)
        if provider is None or self.rules is None:
            return
        with self._lock:
            self._observe(stage, provider, self.rules, session_id, error)

    def _observe(
        self,
        stage: Stage,
        provider: str,
        rules: BreakerRules,
        session_id: UUID,
        error: BaseException | None,
    ) -> None:
        now, w = self.clock(), self.worker
        counted = isinstance(error, StageError) and error.error_type in COUNTED_ERRORS
        if stage in self.probes and self.probes[stage] == session_id:
            del self.probes[stage]
            if counted:
                why = f"probe failed: {_describe(error)}"
                self._change(stage, lambda p: p.open_breaker(stage, provider, w, why, rules, now))
            elif error is None or isinstance(error, StageError):  # the provider answered
                why = f"probe by {w} succeeded" + (f" ({_describe(error)})" if error else "")
                self._change(stage, lambda p: p.close_breaker(stage, provider, w, why, now))
            else:  # handed back unstarted, or a bug: says nothing
                self._change(stage, lambda p: p.return_probe(stage, provider, w, now))
            return
        if error is not None and not isinstance(error, StageError):
            return  # released unstarted, or a bug: says nothing about the provider
        if not self.view.breaker(stage, provider).allows:
            return  # started before the opening: the window starts afresh
        window = self.windows.get(stage, RecentAttempts()).add(counted, rules)
        self.windows[stage] = window
        if window.tripped(rules):
            self.windows[stage] = RecentAttempts()
            why = f"{window.describe()}, the last: {_describe(error)}"
            self._change(stage, lambda p: p.open_breaker(stage, provider, w, why, rules, now))

    def _change(self, stage: Stage, change: Change) -> None:
        """Applies ``change`` here at once; it is recorded (and logged) on the next `flush`."""
        if change(self.view) is not None:
            self._todo.append((stage, change))

    def flush(self) -> None:
        """Records the changes decided since the last flush (each decided anew on the stored
        pipeline: an opening another daemon recorded first is not recorded twice)."""
        with self._lock:
            todo, self._todo = self._todo, []
        if not todo:
            return

        def apply(p: Pipeline) -> list[tuple[Stage, BreakerState]]:
            return [(stage, s) for stage, change in todo if (s := change(p)) is not None]

        try:
            fresh, stored = self.app.change_pipeline(apply, self.clock())
        except BaseException:
            with self._lock:
                self._todo[:0] = todo
            raise
        for stage, state in stored:
            self._say(stage, self.providers[stage], state, self.worker)
        self._adopt(fresh)


def _describe(error: BaseException | None) -> str:
    if isinstance(error, StageError):
        return f"{error.error_type}: {error.message[:200]}"
    return "no error" if error is None else f"{type(error).__name__}: {str(error)[:200]}"


def unpaused_stages(gate: StageGate, stages: Iterable[Stage]) -> list[Stage]:
    return [s for s in stages if not gate.paused_everywhere(s)]


def claim_room(gate: StageGate, candidates: Candidates, stage: Stage, free: int) -> int:
    """The claims ``stage`` may make now. The candidates of a stage paused for every company
    are let go (the level trigger finds them again once it is resumed): a paused stage does
    not keep `run --until-idle` from stopping."""
    waiting = candidates.sizes().get(stage, 0)
    if gate.paused_everywhere(stage):
        candidates.take(stage, waiting, ())
        return 0
    # Without candidates, no probe is asked for: a daemon with nothing to send must not hold
    # the one probe the fleet may send.
    return gate.room(stage, free) if waiting else 0


def standing_unpaused(
    gate: StageGate, work: WorkQueries, now: datetime, companies: Sequence[UUID]
) -> Standing:
    """What is due, running or scheduled for `run --until-idle`, leaving out paused work:
    it waits for an operator, not for the daemon."""
    stages = unpaused_stages(gate, gate.stages)
    if not any(gate.paused(s, c) for s in stages for c in companies):
        return work.standing(stages, now, companies)
    found = [
        work.standing([s], now, [c for c in companies if not gate.paused(s, c)]) for s in stages
    ]
    wakes = [f.wake_at for f in found if f.wake_at is not None]
    return Standing(
        any(f.due for f in found),
        sum(f.running_elsewhere for f in found),
        min(wakes) if wakes else None,
    )
