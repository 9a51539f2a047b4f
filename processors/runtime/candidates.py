"""Sessions that may be due for a stage, found by following the log (edge trigger) and by
asking the status projection (level trigger); the aggregate decides at claim time."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
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


Key = UUID | None
"""A queue's company; None while the company of a candidate is not known (yet)."""

HINTS = 20_000
"""Sessions whose company is remembered for the events that do not name it (all but
`Imported`): the daemon's own recent work, so its hand-offs land in the right queue."""


class _Queue:
    """One stage's candidates, each once: per company in arrival order, the companies taking
    turns (round robin) when taken; a single queue when fairness is off."""

    def __init__(self, fair: bool) -> None:
        self.fair = fair
        self.companies: OrderedDict[Key, OrderedDict[UUID, None]] = OrderedDict()
        self.owner: dict[UUID, Key] = {}

    def __len__(self) -> int:
        return len(self.owner)

    def __contains__(self, sid: UUID) -> bool:
        return sid in self.owner

    def __iter__(self) -> Iterator[UUID]:
        for queue in self.companies.values():
            yield from queue

    def add(self, sid: UUID, company: Key) -> None:
        key = company if self.fair else None
        if sid in self.owner:
            if self.owner[sid] is not None or key is None:
                return
            self.pop(sid)  # its company is known now: into that company's turn
        self.owner[sid] = key
        self.companies.setdefault(key, OrderedDict())[sid] = None

    def pop(self, sid: UUID) -> None:
        if sid not in self.owner:
            return
        key = self.owner.pop(sid)
        queue = self.companies[key]
        del queue[sid]
        if not queue:
            del self.companies[key]

    def take_one(self) -> UUID:
        """The oldest candidate of the company whose turn it is; that company goes last."""
        key, queue = next(iter(self.companies.items()))
        sid, _ = queue.popitem(last=False)
        del self.owner[sid]
        if queue:
            self.companies.move_to_end(key)
        else:
            del self.companies[key]
        return sid

    def others_waiting(self, company: UUID) -> bool:
        return any(key != company for key in self.companies)

    def unknown(self, limit: int) -> list[UUID]:
        queue = self.companies.get(None) if self.fair else None
        return list(itertools.islice(queue, limit)) if queue else []


class Candidates:
    """One queue per stage, each session once; with ``fair``, the companies take turns."""

    def __init__(self, stages: Iterable[Stage], fair: bool = False) -> None:
        self.fair = fair
        self._queues: dict[Stage, _Queue] = {s: _Queue(fair) for s in stages}
        self._hints: OrderedDict[UUID, UUID] = OrderedDict()

    def __bool__(self) -> bool:
        return any(len(q) for q in self._queues.values())

    def __contains__(self, item: tuple[UUID, Stage]) -> bool:
        queue = self._queues.get(item[1])
        return queue is not None and item[0] in queue

    def queued(self, stage: Stage) -> list[UUID]:
        return list(self._queues.get(stage, ()))

    def sizes(self) -> dict[Stage, int]:
        return {s: len(q) for s, q in self._queues.items()}

    def note(self, session_id: UUID, company_id: UUID) -> None:
        """Remembers a session's company for its next events (which do not name it)."""
        if not self.fair:
            return
        self._hints[session_id] = company_id
        self._hints.move_to_end(session_id)
        while len(self._hints) > HINTS:
            self._hints.popitem(last=False)

    def add(
        self, stage: Stage, session_ids: Iterable[UUID], company_id: UUID | None = None
    ) -> None:
        queue = self._queues.get(stage)
        if queue is not None:
            for sid in session_ids:
                queue.add(sid, company_id if company_id is not None else self._hints.get(sid))

    def add_due(self, stage: Stage, due: Iterable[tuple[UUID, UUID]]) -> None:
        """The level trigger's answer: sessions with their company."""
        queue = self._queues.get(stage)
        if queue is not None:
            for sid, company in due:
                queue.add(sid, company)

    def follow(
        self, events: Sequence[Event], now: datetime, mine: Callable[[UUID], bool] | None = None
    ) -> None:
        """Edge trigger: the log's news names the next candidates (of the sessions that are
        ``mine``, in a fleet)."""
        for event in events:
            if mine is not None and not mine(event.originator_id):
                continue
            if isinstance(event, Session.Imported):
                self.note(event.originator_id, event.company_id)
            if isinstance(event, Session.StageStarted | Session.StageSkipped):
                # Claimed already (by this daemon's chaining or by another daemon): a queued
                # candidate would only cost a load to find it is not due, and would pile up.
                queue = self._queues.get(event.stage)
                if queue is not None:
                    queue.pop(event.originator_id)
            stage = next_candidate(event, now)
            if stage is not None and stage in self._queues:
                sid = event.originator_id
                self._queues[stage].add(sid, self._hints.get(sid))

    def take(self, stage: Stage, limit: int, skip: Iterable[tuple[UUID, Stage]]) -> list[UUID]:
        """Up to ``limit`` candidates, leaving out those in ``skip``: the oldest first, or
        with fairness the oldest of each company in turn."""
        queue = self._queues[stage]
        busy = set(skip)
        picked: list[UUID] = []
        while len(queue) and len(picked) < limit:
            sid = queue.take_one()
            if (sid, stage) not in busy:
                picked.append(sid)
        return picked

    def others_waiting(self, stage: Stage, company_id: UUID) -> bool:
        """Whether another company's candidates wait for ``stage`` (one whose company is not
        known yet counts as another's)."""
        queue = self._queues.get(stage)
        return queue is not None and queue.others_waiting(company_id)

    def unknown(self, limit: int = 1000) -> list[UUID]:
        """Queued sessions whose company is not known (news from another writer)."""
        found: list[UUID] = []
        for queue in self._queues.values():
            found.extend(queue.unknown(limit - len(found)))
            if len(found) >= limit:
                break
        return found

    def learn(self, companies: dict[UUID, UUID]) -> None:
        """Companies found for unknown candidates: each moves into its company's turn."""
        for sid, company in companies.items():
            self.note(sid, company)
            for queue in self._queues.values():
                if sid in queue:
                    queue.add(sid, company)

    def stages(self) -> list[Stage]:
        return list(self._queues)

    def keep_only(self, mine: Callable[[UUID], bool]) -> None:
        """Drops the candidates of sessions that are no longer this daemon's to work."""
        for queue in self._queues.values():
            for sid in [s for s in queue if not mine(s)]:
                queue.pop(sid)
