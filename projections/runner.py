"""Projection machinery: read the log in pages, apply each page in one transaction together
with the new position, so every event's effect lands exactly once, whatever crashes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification, Recording
from psycopg.sql import SQL, Identifier
from sqlalchemy import Connection, Engine, delete, select, update

from projections.schema import projection_tracking
from projections.store import WRITE
from projections.upsert import dialect_insert

Event = DomainEventProtocol[Any]


class Projection(Protocol):
    name: str
    topics: tuple[str, ...]
    tables: tuple[str, ...]
    """The tables it writes: the runner refreshes their planner statistics as they grow."""

    def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        """Applies a whole page, set-based, inside the caller's transaction."""

    def clear(self, conn: Connection) -> None:
        """Deletes everything this projection wrote, for a rebuild."""

    def forget(self) -> None:
        """Drops what the projection remembers between pages (another writer moved it)."""


@dataclass(frozen=True)
class Lag:
    name: str
    position: int
    head: int
    events_behind: int
    seconds_behind: float
    events_applied: int
    updated_at: datetime | None


@dataclass(frozen=True)
class Page:
    notifications: Sequence[Notification]
    events: list[Event]
    positions: list[int]
    """The log position of each event (``notifications`` may hold more: see apply_recorded)."""


class PositionedProjection(Projection, Protocol):
    """A projection that also needs each event's log position (the event index)."""

    def apply_at(self, conn: Connection, events: Sequence[Event], positions: Sequence[int]) -> None:
        """As ``apply``, with ``positions[i]`` the log position of ``events[i]``."""


PageListener = Callable[[str, int, Page], None]
"""Called with the projection's name, the position the page started after, and the page,
on the thread that applied it, once its transaction has committed."""


class ProjectionRunner:
    def __init__(
        self,
        engine: Engine,
        recorder: ApplicationRecorder,
        mapper: Mapper[Any],
        projections: Sequence[Projection],
        page_size: int = 2000,
    ) -> None:
        self.engine = engine
        self.recorder = recorder
        self.mapper = mapper
        self.projections = {p.name: p for p in projections}
        self.page_size = page_size
        self.listeners: list[PageListener] = []
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="ld-read")
        self._lock = threading.RLock()
        """One catch-up at a time per runner: a daemon's loop and its scheduled imports share
        one runner, and its hints and the projections' caches are not for two threads at
        once (the database would still refuse a double apply; this keeps the cache honest)."""
        self._applied_to: dict[str, int] = {}
        """Where each projection stood after this runner's last commit: its in-memory state is
        only trusted when the next page starts exactly there."""
        self._grown: dict[str, int] = {}
        """Events applied per projection since its tables' statistics were last refreshed."""
        self._analyze_at: dict[str, int] = {}
        """The event count at which each projection's tables are analyzed next."""
        self._log_analyze_at = self.ANALYZE_FIRST
        """The log position at which the event table's statistics are refreshed next."""

    # ---------------------------------------------------------------- reading
    def position(self, name: str) -> int:
        with self.engine.connect() as conn:
            return self._position(conn, name)

    @staticmethod
    def _position(conn: Connection, name: str, lock: bool = False) -> int:
        query = select(projection_tracking.c.position).where(projection_tracking.c.name == name)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        value = conn.execute(query).scalar()
        return int(value) if value is not None else 0

    def head(self) -> int:
        return self.recorder.max_notification_id() or 0

    def applied_position(self, name: str) -> int | None:
        """Where this runner last left the projection (None before its first page): no query."""
        return self._applied_to.get(name)

    def read_events(self, name: str, after: int, upto: int) -> list[Event]:
        """The projection's events in ``(after, upto]``, read from the log in pages: what
        another runner applied while this one looked away."""
        found: list[Event] = []
        while after < upto:
            page = self._read(name, after)
            for n, event in zip(page.notifications, page.events, strict=True):
                if n.id > upto:
                    return found
                found.append(event)
            if len(page.notifications) < self.page_size:
                break
            after = page.notifications[-1].id
        return found

    # --------------------------------------------------------------- applying
    def catch_up(self, names: Sequence[str] | None = None, max_pages: int | None = None) -> int:
        """Applies pages until every named projection has read the whole log; returns events.

        The next page is read (and decoded) on a helper thread while the current one is
        applied, so the database's answer time overlaps Python's work.
        """
        with self._lock:
            return self._catch_up(names, max_pages)

    def _catch_up(self, names: Sequence[str] | None, max_pages: int | None) -> int:
        total = 0
        reader = self._reader
        for name in names or list(self.projections):
            # Where this runner left it is a hint that saves a query; `_apply` checks it under
            # the tracking row's lock and re-reads the position when another runner moved it.
            hint = self._applied_to.get(name)
            start = self.position(name) if hint is None else hint
            page = self._read(name, start)
            # Nothing after the hint while another runner moved the projection back (a
            # rebuild) leaves nothing to do here; the next event's `_apply` finds the position
            # moved under its lock and reads again from where it really is.
            pages = 0
            while page.notifications and (max_pages is None or pages < max_pages):
                end = page.notifications[-1].id
                ahead: Future[Page] | None = None
                if len(page.notifications) == self.page_size:  # more may follow: read ahead
                    ahead = reader.submit(self._read, name, end)
                if self._apply(name, start, page):
                    total += len(page.events)
                    start = end
                else:  # another runner moved this projection: read from where it is now
                    if ahead is not None:
                        ahead.cancel()
                    start = self.position(name)
                    ahead = reader.submit(self._read, name, start)
                pages += 1
                if ahead is None:
                    break
                page = ahead.result()
            self._refresh_statistics(name, total)
        self._refresh_log_statistics(max(self._applied_to.values(), default=0))
        return total

    ANALYZE_FIRST = 1_000
    ANALYZE_MAX_GAP = 500_000

    def _refresh_statistics(self, name: str, applied: int) -> None:
        """ANALYZE a projection's tables after 1k applied events, then each time the count
        doubles (at least every 500k). PostgreSQL's autovacuum waits a minute and 10% growth;
        until then a table filled from empty keeps the "one row" estimate, and the daemon's
        due-work queries pick nested loops that cost 100× (measured: 215 ms against 2 ms)."""
        grown = self._grown.get(name, 0) + applied
        self._grown[name] = grown
        threshold = self._analyze_at.get(name, self.ANALYZE_FIRST)
        if grown < threshold or self.engine.dialect.name != "postgresql":
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in self.projections[name].tables:
                conn.exec_driver_sql(f'ANALYZE "{table}"')
        self._analyze_at[name] = self._next_analyze(grown)

    def _next_analyze(self, count: int) -> int:
        """When the count has doubled, but at least every ANALYZE_MAX_GAP."""
        return count + min(max(count, self.ANALYZE_FIRST), self.ANALYZE_MAX_GAP)

    def _refresh_log_statistics(self, position: int) -> None:
        """ANALYZE the event table once a catch-up reaches 1k events, then each time the log
        doubles. Without statistics PostgreSQL guesses that `notification_id > x` keeps a
        third of the table and reads the next page with a parallel bitmap scan and a sort:
        15 ms a page at 80k events instead of 0.3 ms for the index scan it picks with them.
        Autovacuum would only analyze after a minute, and a daemon reads a page every turn."""
        if position < self._log_analyze_at or self.engine.dialect.name != "postgresql":
            return
        table = getattr(self.recorder, "events_table_name", None)
        datastore = getattr(self.recorder, "datastore", None)
        if table is None or datastore is None:
            return
        with datastore.get_connection() as conn:
            conn.execute(
                SQL("ANALYZE {}.{}").format(Identifier(datastore.schema), Identifier(table))
            )
        self._log_analyze_at = self._next_analyze(position)

    def close(self) -> None:
        self._reader.shutdown(wait=False, cancel_futures=True)

    def follow(self, stop: threading.Event, wake: threading.Event, poll_interval: float) -> None:
        """Keeps every projection caught up until ``stop``: woken early by ``wake`` (NOTIFY on
        PostgreSQL), and polling every ``poll_interval`` seconds regardless, so a lost
        notification delays nothing by more than one interval."""
        while not stop.is_set():
            wake.clear()
            self.catch_up()
            wake.wait(poll_interval)

    def apply_next_page(self, name: str) -> int:
        """Applies one page; returns the number of events, or -1 when there was nothing to read."""
        with self._lock:
            return self._apply_next_page(name)

    def _apply_next_page(self, name: str) -> int:
        start = self.position(name)
        page = self._read(name, start)
        if not page.notifications:
            return -1
        return len(page.events) if self._apply(name, start, page) else 0

    def apply_recorded(self, name: str, recordings: Sequence[Recording[UUID]]) -> bool:
        """Applies events this process has just stored, from memory, when they are exactly
        what the log holds after the projection's position (no other writer in between);
        False, and nothing done, otherwise: the next `catch_up` reads them instead.

        Reading back and decoding what was just written is about a fifth of the daemon's
        time on PostgreSQL."""
        with self._lock:
            start = self._applied_to.get(name)
            ids = [r.notification.id for r in recordings]
            if start is None or not ids or ids != list(range(start + 1, start + 1 + len(ids))):
                return False
            topics = set(self.projections[name].topics)
            mine = [r for r in recordings if r.notification.topic in topics]
            events = [r.domain_event for r in mine]
            positions = [r.notification.id for r in mine]
            page = Page([r.notification for r in recordings], events, positions)
            return self._apply(name, start, page)

    def _read(self, name: str, start: int) -> Page:
        notifications = self.recorder.select_notifications(
            start=start,
            limit=self.page_size,
            topics=self.projections[name].topics,
            inclusive_of_start=False,
        )
        # A mapper that seals personal data reads the page's keys with one query.
        decode_all = getattr(self.mapper, "decode_all", None)
        events = (
            decode_all(notifications)
            if decode_all is not None
            else [self.mapper.to_domain_event(n) for n in notifications]
        )
        return Page(notifications, events, [n.id for n in notifications])

    def _apply(self, name: str, start: int, page: Page) -> bool:
        """One transaction: the page's effects and the new position, or nothing at all."""
        projection = self.projections[name]
        if self._applied_to.get(name) != start:
            projection.forget()  # what it remembers is from before another writer's pages
        self._applied_to.pop(name, None)
        # On PostgreSQL the engine's connections commit without waiting for the WAL flush
        # (projections/store.py): a projection's rows and position roll back together.
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            if not self._advance(conn, name, start, page.notifications[-1].id, len(page.events)):
                return False
            apply_at = getattr(projection, "apply_at", None)  # a PositionedProjection
            if apply_at is not None:
                apply_at(conn, page.events, page.positions)
            else:
                projection.apply(conn, page.events)
        self._applied_to[name] = page.notifications[-1].id
        for listener in self.listeners:
            listener(name, start, page)
        return True

    def _advance(self, conn: Connection, name: str, old: int, new: int, count: int) -> bool:
        """Moves the position from ``old`` to ``new`` unless another runner moved it first.

        The conditional UPDATE both checks and locks the tracking row (a concurrent mover
        waits for it and then finds the position changed), one round trip instead of a
        SELECT ... FOR UPDATE before the page and an UPDATE after it."""
        now = datetime.now(UTC)
        if old == 0:  # the first page: the row may not exist yet, and two runners may race
            created = conn.execute(
                dialect_insert(conn, projection_tracking)
                .values(name=name, position=new, events_applied=count, updated_at=now)
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(projection_tracking.c.name)
            ).first()
            if created is not None:
                return True
        moved = conn.execute(
            update(projection_tracking)
            .where(projection_tracking.c.name == name, projection_tracking.c.position == old)
            .values(
                position=new,
                events_applied=projection_tracking.c.events_applied + count,
                updated_at=now,
            )
        )
        return moved.rowcount == 1

    def moved(self, names: Sequence[str]) -> None:
        """Another writer replaced these projections' tables (a swapped rebuild): forget the
        hints and whatever the projections remember between pages."""
        with self._lock:
            for name in names:
                self._applied_to.pop(name, None)
                self.projections[name].forget()

    def rebuild(self, name: str) -> int:
        """Empties the projection and replays the whole log into it."""
        projection = self.projections[name]
        with self._lock:
            with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
                self._position(conn, name, lock=True)
                projection.clear(conn)
                projection.forget()
                conn.execute(delete(projection_tracking).where(projection_tracking.c.name == name))
            self._applied_to.pop(name, None)
            return self.catch_up([name])

    # -------------------------------------------------------------------- lag
    def lag(self) -> list[Lag]:
        head = self.head()
        result = []
        with self.engine.connect() as conn:
            rows = {r.name: r for r in conn.execute(select(projection_tracking)).all()}
        for name, projection in self.projections.items():
            row = rows.get(name)
            position = int(row.position) if row else 0
            behind_events = self.recorder.select_notifications(
                start=position, limit=1, topics=projection.topics, inclusive_of_start=False
            )
            seconds = 0.0
            if behind_events:
                oldest: Any = self.mapper.to_domain_event(behind_events[0])
                seconds = max(0.0, (datetime.now(UTC) - oldest.timestamp).total_seconds())
            result.append(
                Lag(
                    name=name,
                    position=position,
                    head=head,
                    events_behind=max(0, head - position) if behind_events else 0,
                    seconds_behind=seconds,
                    events_applied=int(row.events_applied) if row else 0,
                    updated_at=row.updated_at if row else None,
                )
            )
        return result
