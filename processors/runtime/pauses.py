"""The daemon's side of the pipeline's switches: operators' pauses and circuit breakers.

The switches are events on the Pipeline aggregate (domain/pipeline.py), read on every level
tick, so a pause or a breaker opened by anyone (an operator, another daemon of the fleet) holds
here within one tick. What the daemon asks:

- `why_wait`: must this stage's work for this company wait? Asked before a claim and again on
  the worker thread just before queued work starts, so a pause that arrives while work is
  queued hands it back unstarted (no attempt used); running work finishes.
- `room`: how many claims of a stage may be made now: all free slots while its breaker is
  closed, one (the probe) once this daemon holds the half-open breaker's probe, else none.
- `admits`: for TRANSCRIPT_FETCH, whose provider is each session's transcript origin (one
  breaker per origin, so one dead host does not stop the others): may this session's fetch
  be claimed now? `held_origins` names the origins whose sessions the due query leaves out.

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

from domain.breaker import BreakerRules, BreakerState, RecentAttempts, counts_against_provider
from domain.pipeline import Pipeline, breaker_key
from domain.session import Session
from domain.stages import Stage
from domain.urls import origin_of
from processors.clock import Clock
from processors.runtime.candidates import Candidates
from processors.runtime.config import DaemonConfig
from processors.stages.base import StageError
from projections.work import Standing, WorkQueries
from store.application import LiveDashApp

Change = Callable[[Pipeline], BreakerState | None]
Key = tuple[Stage, str]
"""A breaker: its stage and provider."""
PER_ORIGIN: frozenset[Stage] = frozenset({Stage.TRANSCRIPT_FETCH})
"""Stages whose provider is the session's own (the transcript's origin), not the stage's."""


def transcript_origin(session: Session) -> str | None:
    """``scheme://host:port`` of the session's transcript URL (the port always written, so
    one origin has one name); None without an http(s) URL."""
    origin = origin_of(session.row.transcript_url or "")
    if origin is None:
        return None
    scheme, host, port = origin
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


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
        self.per_origin = frozenset(s for s in stages if s in PER_ORIGIN and self.rules is not None)
        self.in_flight = in_flight
        self.stages = list(stages)
        self.view = Pipeline.start(clock())
        """The pipeline as last read, with this daemon's own changes not yet recorded."""
        self.windows: dict[Key, RecentAttempts] = {}
        self.probes: dict[Key, UUID | None] = {}
        """Breakers whose probe this daemon holds: the session claimed for it (None: not yet)."""
        self._todo: list[tuple[Key, Change]] = []
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
            for stage, provider in self._keys(old, fresh):
                before, after = old.breaker(stage, provider), fresh.breaker(stage, provider)
                if after != before:
                    key = (stage, provider)
                    self.windows.pop(key, None)  # a new phase: the old window says nothing
                    if after.phase != "half_open" or after.probe_by != self.worker:
                        self.probes.pop(key, None)
                    by = fresh.breaker_by.get(breaker_key(stage, provider))
                    self._say(stage, provider, after, by)
        for name, pause in fresh.pauses.items():
            if name not in old.pauses:
                self.log("stage_paused", stage=pause.stage, company=pause.company,
                         actor=pause.actor, reason=pause.reason)  # fmt: skip
        for name, pause in old.pauses.items():
            if name not in fresh.pauses:
                self.log("stage_resumed", stage=pause.stage, company=pause.company)

    def _keys(self, *views: Pipeline) -> list[Key]:
        """The breakers this daemon honours: its stages' fixed providers, and every origin's
        breaker of a per-origin stage that any of ``views`` knows."""
        keys = dict.fromkeys(self.providers.items())
        for stage in self.per_origin:
            for view in views:
                keys.update(dict.fromkeys((stage, p) for p in view.breakers_of(stage)))
        return list(keys)

    def provider_of(self, stage: Stage, session: Session) -> str | None:
        if stage in self.per_origin:
            return transcript_origin(session)
        return self.providers.get(stage)

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

    def _breaker(self, stage: Stage, provider: str | None = None) -> BreakerState | None:
        provider = provider or self.providers.get(stage)
        return self.view.breaker(stage, provider) if provider is not None else None

    def why_wait_for(self, stage: Stage, session: Session) -> str | None:
        """`why_wait` for this session's work (its transcript origin's breaker too)."""
        return self.why_wait(
            stage, session.company_id, session.id, self.provider_of(stage, session)
        )

    def why_wait(
        self,
        stage: Stage,
        company_id: UUID,
        session_id: UUID | None = None,
        provider: str | None = None,
    ) -> str | None:
        """Why work of ``stage`` for ``company_id`` must not start now, if it must not (also
        asked on worker threads). ``provider``: the session's own (a transcript origin)."""
        with self._lock:
            pause = self.view.paused(stage, company_id)
            if pause is not None:
                return f"{stage.value} paused by {pause.actor}: {pause.reason}"
            held = self.holds(stage, company_id) if self.holds is not None else None
            if held is not None:
                return held
            breaker = self._breaker(stage, provider)
            if breaker is None or breaker.allows:
                return None
            key = (stage, provider or self.providers.get(stage, ""))
            if session_id is not None and self.probes.get(key) == session_id:
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
        provider = self.providers.get(stage)
        if provider is None:
            return free  # no breaker, or one per origin (`admits`)
        with self._lock:
            answer = self._probe_room(stage, provider, None)
        if answer == "take":
            answer = "yes" if self._take_probe(stage, provider) else "no"
        return free if answer == "closed" else 1 if answer == "yes" else 0

    def admits(self, stage: Stage, session: Session) -> bool:
        """May this session's claim be made, as far as its origin's breaker goes? While the
        breaker is open, only the one probe (taken here when it is due) is admitted."""
        if stage not in self.per_origin:
            return True
        origin = transcript_origin(session)
        if origin is None:
            return True
        with self._lock:
            answer = self._probe_room(stage, origin, session.id)
        if answer == "take":
            return self._take_probe(stage, origin)
        return answer != "no"

    def _probe_room(self, stage: Stage, provider: str, session_id: UUID | None) -> str:
        """ "closed", or whether one more claim (the probe) may be made: "yes", "no", or
        "take" when the probe is due and the caller should take it (one write, made
        outside the lock that worker threads wait on)."""
        breaker = self.view.breaker(stage, provider)
        if breaker.allows:
            return "closed"
        assert self.rules is not None
        key = (stage, provider)
        mine = breaker.phase == "half_open" and breaker.probe_by == self.worker
        if mine and key in self.probes:
            probe = self.probes[key]
            if probe is None or probe == session_id:
                return "yes"
            if (probe, stage) in self.in_flight:
                return "no"  # the probe is out
            self.probes[key] = None  # its claim was lost or handed back: another session
            return "yes"
        return "take" if breaker.probe_due(self.clock(), self.rules) else "no"

    def held_origins(self, stage: Stage) -> list[str]:
        """Origins of ``stage`` whose breaker is not closed and whose probe is not this
        daemon's to send now: the due query leaves their sessions out, so a dead host's
        backlog neither fills the claim batches nor is loaded every tick."""
        if stage not in self.per_origin or self.rules is None:
            return []
        now, held = self.clock(), []
        with self._lock:
            for origin, breaker in self.view.breakers_of(stage).items():
                if breaker.allows or breaker.probe_due(now, self.rules):
                    continue
                mine = breaker.phase == "half_open" and breaker.probe_by == self.worker
                if mine and self.probes.get((stage, origin), 0) is None:
                    continue  # this daemon took the probe and has not claimed it yet
                held.append(origin)
        return held

    def _take_probe(self, stage: Stage, provider: str) -> bool:
        assert self.rules is not None
        rules, now = self.rules, self.clock()
        self.flush()
        fresh, granted = self.app.change_pipeline(
            lambda p: p.take_probe(stage, provider, self.worker, rules, now), now
        )
        with self._lock:
            self._adopt(fresh)
            if granted is None:
                return False
            self.probes[(stage, provider)] = None
            return True

    def claimed(self, stage: Stage, session: Session) -> None:
        """A claim of ``stage`` was made: the probe, if this daemon holds one unclaimed."""
        provider = self.provider_of(stage, session)
        if provider is None:
            return
        key = (stage, provider)
        with self._lock:
            if key in self.probes and self.probes[key] is None:
                self.probes[key] = session.id
                self.log(
                    "breaker_probe", stage=stage.value, provider=provider, session=str(session.id)
                )

    # ------------------------------------------------------------ outcomes
    def observe(self, stage: Stage, session: Session, error: BaseException | None) -> None:
        """An attempt ended (on its worker thread, or at its timeout): the probe's outcome
        decides the breaker; others fill the window while it is closed, and may open it."""
        provider = self.provider_of(stage, session)
        if provider is None or self.rules is None:
            return
        with self._lock:
            self._observe(stage, provider, self.rules, session.id, error)

    def _observe(
        self,
        stage: Stage,
        provider: str,
        rules: BreakerRules,
        session_id: UUID,
        error: BaseException | None,
    ) -> None:
        now, w, key = self.clock(), self.worker, (stage, provider)
        counted = isinstance(error, StageError) and counts_against_provider(error.error_type)
        if key in self.probes and self.probes[key] == session_id:
            del self.probes[key]
            if counted:
                why = f"probe failed: {_describe(error)}"
                self._change(key, lambda p: p.open_breaker(stage, provider, w, why, rules, now))
            elif error is None or isinstance(error, StageError):  # the provider answered
                why = f"probe by {w} succeeded" + (f" ({_describe(error)})" if error else "")
                self._change(key, lambda p: p.close_breaker(stage, provider, w, why, now))
            else:  # handed back unstarted, or a bug: says nothing
                self._change(key, lambda p: p.return_probe(stage, provider, w, now))
            return
        if error is not None and not isinstance(error, StageError):
            return  # released unstarted, or a bug: says nothing about the provider
        if not self.view.breaker(stage, provider).allows:
            return  # started before the opening: the window starts afresh
        window = self.windows.get(key, RecentAttempts()).add(counted, rules)
        self.windows[key] = window
        if window.tripped(rules):
            self.windows[key] = RecentAttempts()
            why = f"{window.describe()}, the last: {_describe(error)}"
            self._change(key, lambda p: p.open_breaker(stage, provider, w, why, rules, now))

    def _change(self, key: Key, change: Change) -> None:
        """Applies ``change`` here at once; it is recorded (and logged) on the next `flush`."""
        if change(self.view) is not None:
            self._todo.append((key, change))

    def flush(self) -> None:
        """Records the changes decided since the last flush (each decided anew on the stored
        pipeline: an opening another daemon recorded first is not recorded twice)."""
        with self._lock:
            todo, self._todo = self._todo, []
        if not todo:
            return

        def apply(p: Pipeline) -> list[tuple[Key, BreakerState]]:
            return [(key, s) for key, change in todo if (s := change(p)) is not None]

        try:
            fresh, stored = self.app.change_pipeline(apply, self.clock())
        except BaseException:
            with self._lock:
                self._todo[:0] = todo
            raise
        for (stage, provider), state in stored:
            self._say(stage, provider, state, self.worker)
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
