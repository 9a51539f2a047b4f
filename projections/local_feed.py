"""A writer's window on the status projection: what it stored, projected from memory; what
anyone stored, handed back as news in log order.

A daemon writes most of what the status projection applies. Reading its own events back from
the log and decoding them is about a fifth of its time on PostgreSQL, and the rows they touch
are rows it has just loaded. So the feed projects the writer's own recordings from memory
(when nothing else was stored in between), may let the projection wait one turn while only
this writer writes (one page then carries two turns, and a stage started in one and finished
in the next is one row write, not two), and hands the projection the pre-images of the
sessions the writer is about to change (so the page need not read their rows).

The same pages are the writer's news: `take()` returns every session event the projection
has applied since the last call, in log order, whoever applied it (this runner's pages from
memory, another runner's or process's read from the log), so the writer can follow the log
without a listener of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from uuid import UUID

from eventsourcing.persistence import Recording

from domain.session import Session
from projections.runner import Event, Page, ProjectionRunner
from projections.status import StatusProjection, known


@dataclass(frozen=True)
class _Chunk:
    after: int
    end: int
    events: list[Event]


class LocalFeed:
    def __init__(
        self,
        runner: ProjectionRunner,
        defer_turns: int = 1,
        on_news: Callable[[], None] | None = None,
        name: str = StatusProjection.name,
    ) -> None:
        self.runner = runner
        self.name = name
        self.defer_turns = defer_turns
        self.on_news = on_news
        """Called when another thread applied a page: the owner wakes up to take it."""
        status = runner.projections.get(name)
        self._status = status if isinstance(status, StatusProjection) else None
        self._own: list[Recording[UUID]] = []
        self._deferred = 0
        self._chunks: SimpleQueue[_Chunk] = SimpleQueue()
        self._pending: list[_Chunk] = []
        self._cursor: int | None = None
        self._owner: int | None = None
        self._moved: set[str] = set()
        runner.listeners.append(self._on_page)

    # ----------------------------------------------------------- the writer
    def own_thread(self) -> None:
        """The calling thread is the owner's: its own pages need no wake-up."""
        self._owner = threading.get_ident()

    def about_to_change(self, sessions: Iterable[Session]) -> None:
        """Pre-images of sessions the writer loaded and is about to change: the next page
        takes their rows from here instead of reading them."""
        if self._status is not None:
            self._status.know([known(s) for s in sessions])

    def stored(self, recordings: Sequence[Recording[UUID]]) -> None:
        """What the writer's save just put in the log."""
        self._own.extend(recordings)

    @property
    def unprojected(self) -> bool:
        """The writer stored events the projection has yet to apply."""
        return bool(self._own)

    def advance(self, now: bool = False) -> None:
        """Brings the projection up to date: the writer's own events from memory, anyone
        else's from the log; unless only the writer wrote since the last time, and the
        projection has not waited yet (``now`` forbids waiting)."""
        if not now and self._may_wait():
            self._deferred += 1
            return
        own, self._own = self._own, []
        self._deferred = 0
        if own:
            self.runner.apply_recorded(self.name, own)  # else the catch-up reads them
        self.runner.catch_up([self.name])

    def _may_wait(self) -> bool:
        if not self._own or self._deferred >= self.defer_turns:
            return False
        return self.head() == self._own[-1].notification.id  # no one else wrote

    # ---------------------------------------------------------------- news
    @property
    def news_waiting(self) -> bool:
        return bool(self._pending) or not self._chunks.empty()

    def take(self) -> list[Event]:
        """Session events the projection applied since the last call, in log order (from
        the first page this feed saw)."""
        while True:
            try:
                self._pending.append(self._chunks.get_nowait())
            except Empty:
                break
        chunks, self._pending = sorted(self._pending, key=lambda c: c.after), []
        news: list[Event] = []
        for chunk in chunks:
            if self._cursor is None:
                self._cursor = chunk.after
            if chunk.end <= self._cursor:
                continue  # seen already (a page re-applied after another runner's)
            if chunk.after > self._cursor:  # another runner applied the gap
                news.extend(self.runner.read_events(self.name, self._cursor, chunk.after))
            elif chunk.after < self._cursor:  # overlaps what we have: keep the rest only
                news.extend(self.runner.read_events(self.name, self._cursor, chunk.end))
                self._cursor = chunk.end
                continue
            news.extend(chunk.events)
            self._cursor = chunk.end
        return [e for e in news if isinstance(e, Session.Event)]

    def changed(self, name: str) -> bool:
        """Whether this process applied a page of projection ``name`` since the last ask."""
        if name in self._moved:
            self._moved.discard(name)
            return True
        return False

    def _on_page(self, name: str, start: int, page: Page) -> None:
        if name != self.name:
            self._moved.add(name)
            return
        self._chunks.put(_Chunk(start, page.notifications[-1].id, page.events))
        if threading.get_ident() != self._owner and self.on_news is not None:
            self.on_news()

    # ------------------------------------------------------------ the rest
    def head(self) -> int:
        """The log's last position (a question to the database)."""
        return self.runner.head()

    def catch_up_others(self) -> None:
        """The projections other than this one (the reports), from the log."""
        self.runner.catch_up([n for n in self.runner.projections if n != self.name])

    def close(self) -> None:
        """Projects what the writer stored and leaves every projection up to date, then
        stops listening (also when the database refuses)."""
        try:
            self.advance(now=True)
            self.runner.catch_up()
        finally:
            self.detach()

    def detach(self) -> None:
        if self._on_page in self.runner.listeners:
            self.runner.listeners.remove(self._on_page)
