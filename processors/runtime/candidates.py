"""Sessions that may be due for a stage, found by following the log (edge trigger) and by
asking the status projection (level trigger); the aggregate decides at claim time."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from uuid import UUID

from domain.session import Session
from domain.stages import Stage
from projections.runner import Event


def next_candidate(event: Event, now: datetime) -> Stage | None:
    """The stage an event makes worth a look for its session, if any."""
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


class Candidates:
    """One queue per stage, oldest first, each session once."""

    def __init__(self, stages: Iterable[Stage]) -> None:
        self._queues: dict[Stage, OrderedDict[UUID, None]] = {s: OrderedDict() for s in stages}

    def __bool__(self) -> bool:
        return any(self._queues.values())

    def __contains__(self, item: tuple[UUID, Stage]) -> bool:
        queue = self._queues.get(item[1])
        return queue is not None and item[0] in queue

    def queued(self, stage: Stage) -> list[UUID]:
        return list(self._queues.get(stage, ()))

    def sizes(self) -> dict[Stage, int]:
        return {s: len(q) for s, q in self._queues.items()}

    def add(self, stage: Stage, session_ids: Iterable[UUID]) -> None:
        queue = self._queues.get(stage)
        if queue is not None:
            for sid in session_ids:
                queue[sid] = None

    def follow(
        self, events: Sequence[Event], now: datetime, mine: Callable[[UUID], bool] | None = None
    ) -> None:
        """Edge trigger: the log's news names the next candidates (of the sessions that are
        ``mine``, in a fleet)."""
        for event in events:
            if mine is not None and not mine(event.originator_id):
                continue
            if isinstance(event, Session.StageStarted | Session.StageSkipped):
                # Claimed already (by this daemon's chaining or by another daemon): a queued
                # candidate would only cost a load to find it is not due, and would pile up.
                queue = self._queues.get(event.stage)
                if queue is not None:
                    queue.pop(event.originator_id, None)
            stage = next_candidate(event, now)
            if stage is not None and stage in self._queues:
                self._queues[stage][event.originator_id] = None

    def take(self, stage: Stage, limit: int, skip: Iterable[tuple[UUID, Stage]]) -> list[UUID]:
        """Up to ``limit`` of the stage's oldest candidates, leaving out those in ``skip``."""
        queue = self._queues[stage]
        busy = set(skip)
        picked: list[UUID] = []
        while queue and len(picked) < limit:
            sid, _ = queue.popitem(last=False)
            if (sid, stage) not in busy:
                picked.append(sid)
        return picked

    def stages(self) -> list[Stage]:
        return list(self._queues)

    def keep_only(self, mine: Callable[[UUID], bool]) -> None:
        """Drops the candidates of sessions that are no longer this daemon's to work."""
        for queue in self._queues.values():
            for sid in [s for s in queue if not mine(s)]:
                del queue[sid]
