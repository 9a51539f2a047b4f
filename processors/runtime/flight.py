"""A claimed attempt on its way through a pool, and what came of it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from domain.session import Session
from domain.stages import Stage
from processors.runtime.config import LEASE_MARGIN
from processors.stages.base import WorkReleased


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
    def key(self) -> tuple[Any, Stage]:
        return (self.session.id, self.stage)

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


def per_stage(
    in_flight: Mapping[tuple[Any, Stage], InFlight], stages: Iterable[Stage]
) -> dict[str, int]:
    """Claims held per stage (every stage of ``stages``, zeros included)."""
    return {s.value: sum(1 for k in in_flight if k[1] is s) for s in stages}
