"""The Pipeline aggregate: the installation-wide switches on stages, one aggregate for all.

An operator pauses a stage (for every company or for one) and resumes it; a daemon's circuit
breaker opens, half-opens and closes a stage against its provider. Every daemon of a fleet
reads this aggregate on its level tick, so a pause or an opening recorded by anyone is honoured
by all. Being one aggregate, concurrent changes are serialised by its version: a daemon that
loses the race reloads and decides again (two daemons never both get the probe).
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate
from pydantic import BaseModel, ConfigDict

from domain.breaker import BreakerRules, BreakerState
from domain.errors import DomainError
from domain.stages import Stage

PIPELINE_ID = uuid5(NAMESPACE_URL, "https://livedash.invalid/pipeline")


class PauseError(DomainError):
    pass


class StagePause(BaseModel):
    """Who paused which stage (for one company, or all: ``company_id`` None), when and why."""

    model_config = ConfigDict(frozen=True)

    stage: str
    company_id: UUID | None = None
    company: str | None = None
    reason: str
    actor: str
    since: datetime


def pause_key(stage: Stage, company_id: UUID | None) -> str:
    return f"{stage.value}/{company_id or '*'}"


def breaker_key(stage: Stage, provider: str) -> str:
    return f"{stage.value}/{provider}"


class Pipeline(Aggregate):
    TOPIC = "livedash:Pipeline"

    class Event(Aggregate.Event):
        TOPIC = "livedash:Pipeline.Event"

    class Started(Aggregate.Created):
        TOPIC = "livedash:Pipeline.Started"

    class StagePaused(Aggregate.Event):
        TOPIC = "livedash:Pipeline.StagePaused"
        pause: StagePause

        def apply(self, aggregate: Pipeline) -> None:
            stage = Stage(self.pause.stage)
            aggregate.pauses[pause_key(stage, self.pause.company_id)] = self.pause

    class StageResumed(Aggregate.Event):
        TOPIC = "livedash:Pipeline.StageResumed"
        stage: Stage
        company_id: UUID | None
        company: str | None
        reason: str
        actor: str

        def apply(self, aggregate: Pipeline) -> None:
            aggregate.pauses.pop(pause_key(self.stage, self.company_id), None)

    class BreakerChanged(Aggregate.Event):
        """A breaker's new state (opened, half-open with its probe, closed) and why."""

        TOPIC = "livedash:Pipeline.BreakerChanged"
        stage: Stage
        provider: str
        breaker: BreakerState
        worker: str

        def apply(self, aggregate: Pipeline) -> None:
            key = breaker_key(self.stage, self.provider)
            aggregate.breakers[key] = self.breaker
            aggregate.breaker_by[key] = self.worker

    class BreakerOpened(BreakerChanged):
        TOPIC = "livedash:Pipeline.BreakerOpened"

    class BreakerHalfOpened(BreakerChanged):
        """One probe may go, by ``worker``."""

        TOPIC = "livedash:Pipeline.BreakerHalfOpened"

    class BreakerClosed(BreakerChanged):
        TOPIC = "livedash:Pipeline.BreakerClosed"

    def __init__(self) -> None:
        self.pauses: dict[str, StagePause] = {}
        self.breakers: dict[str, BreakerState] = {}
        self.breaker_by: dict[str, str] = {}
        """The daemon that recorded each breaker's last change."""

    @classmethod
    def start(cls, now: datetime) -> Pipeline:
        return cls._create(cls.Started, id=PIPELINE_ID, timestamp=now)

    # ------------------------------------------------------------- pauses
    def pause(
        self,
        stage: Stage,
        company_id: UUID | None,
        company: str | None,
        reason: str,
        actor: str,
        now: datetime,
    ) -> bool:
        """False when it is paused so already (the first reason stands)."""
        if not reason.strip():
            raise PauseError("a pause needs a reason")
        if pause_key(stage, company_id) in self.pauses:
            return False
        pause = StagePause(
            stage=stage.value,
            company_id=company_id,
            company=company,
            reason=reason.strip(),
            actor=actor,
            since=now,
        )
        self.trigger_event(self.StagePaused, pause=pause, timestamp=now)
        return True

    def resume(
        self, stage: Stage, company_id: UUID | None, reason: str, actor: str, now: datetime
    ) -> bool:
        """False when the stage was not paused so."""
        pause = self.pauses.get(pause_key(stage, company_id))
        if pause is None:
            return False
        self.trigger_event(
            self.StageResumed,
            stage=stage,
            company_id=company_id,
            company=pause.company,
            reason=reason,
            actor=actor,
            timestamp=now,
        )
        return True

    def paused(self, stage: Stage, company_id: UUID | None = None) -> StagePause | None:
        """The pause that holds ``stage`` for every company, or for ``company_id``."""
        every = self.pauses.get(pause_key(stage, None))
        if every is not None or company_id is None:
            return every
        return self.pauses.get(pause_key(stage, company_id))

    # ----------------------------------------------------------- breakers
    def breaker(self, stage: Stage, provider: str) -> BreakerState:
        return self.breakers.get(breaker_key(stage, provider)) or BreakerState()

    def breakers_of(self, stage: Stage) -> dict[str, BreakerState]:
        """Every breaker of ``stage`` recorded so far, by provider (a transcript host has
        one each)."""
        prefix = f"{stage.value}/"
        return {k[len(prefix) :]: v for k, v in self.breakers.items() if k.startswith(prefix)}

    def open_breaker(
        self,
        stage: Stage,
        provider: str,
        worker: str,
        reason: str,
        rules: BreakerRules,
        now: datetime,
    ) -> BreakerState | None:
        return self._change(
            stage, provider, worker, self.breaker(stage, provider).opened(now, reason, rules), now
        )

    def take_probe(
        self, stage: Stage, provider: str, worker: str, rules: BreakerRules, now: datetime
    ) -> BreakerState | None:
        state = self.breaker(stage, provider).probing(worker, now, rules)
        return self._change(stage, provider, worker, state, now)

    def close_breaker(
        self, stage: Stage, provider: str, worker: str, reason: str, now: datetime
    ) -> BreakerState | None:
        state = self.breaker(stage, provider).closed(now, reason)
        return self._change(stage, provider, worker, state, now)

    def return_probe(
        self, stage: Stage, provider: str, worker: str, now: datetime
    ) -> BreakerState | None:
        state = self.breaker(stage, provider).probe_returned(worker, now)
        return self._change(stage, provider, worker, state, now)

    def _change(
        self,
        stage: Stage,
        provider: str,
        worker: str,
        state: BreakerState | None,
        now: datetime,
    ) -> BreakerState | None:
        if state is not None:
            self.trigger_event(
                BREAKER_EVENTS[state.phase],
                stage=stage,
                provider=provider,
                breaker=state,
                worker=worker,
                timestamp=now,
            )
        return state


BREAKER_EVENTS: dict[str, type[Pipeline.BreakerChanged]] = {
    "open": Pipeline.BreakerOpened,
    "half_open": Pipeline.BreakerHalfOpened,
    "closed": Pipeline.BreakerClosed,
}
