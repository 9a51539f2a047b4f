"""The group commit: every aggregate a loop turn changed, stored in one transaction, and what
to do for each part once it is stored (or lost a race)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.persistence import Recording

from domain.session import Session
from store.application import LiveDashApp


@dataclass
class Write:
    sessions: list[Session]
    after: Callable[[set[UUID]], None]
    """Called with the ids that were stored (the others lost a race with another writer)."""


class WriteQueue:
    def __init__(self, app: LiveDashApp, *stored: Callable[[Sequence[Recording[UUID]]], None]):
        self.app = app
        self.stored = stored
        """Told what each commit put in the log (the local feed projects it from memory; the
        metrics count it)."""
        self._writes: list[Write] = []

    def __bool__(self) -> bool:
        return bool(self._writes)

    def add(self, sessions: Sequence[Session], after: Callable[[set[UUID]], None]) -> None:
        self._writes.append(Write(list(sessions), after))

    @property
    def waiting(self) -> int:
        """Aggregates waiting to be stored (kept across a database outage)."""
        return sum(len(w.sessions) for w in self._writes)

    def flush(self) -> None:
        """Stores everything waiting in one transaction. When the database is away nothing
        is lost: the events stay pending on their aggregates and the writes wait for the next
        try."""
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
        for told in self.stored:
            told(result.recordings)
        lost = {a.id for a in result.lost}
        saved = (result.saved_ids | clean) - lost
        for write in writes:
            write.after(saved)

    def save_now(self, sessions: Sequence[Session]) -> set[UUID]:
        """Stores these sessions (with anything else waiting) now; the ids that were stored."""
        saved: set[UUID] = set()
        self.add(sessions, saved.update)
        self.flush()
        return saved & {s.id for s in sessions}
