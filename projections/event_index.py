"""The event index: every stored event's searchable fields, by log position.

`livedash events` filters this table and decodes only the events of the page it returns,
instead of decoding the whole log. A session's events after its first carry neither its
company nor its stage statuses, so the projection remembers both per session (a bounded
cache, refilled from the session's earlier index rows when a session falls out of it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, select

from domain.event_facts import COMPANY_EVENTS, SESSION_EVENTS, Statuses, facts, next_statuses
from projections.bulk import BulkTable
from projections.runner import Event
from projections.schema import event_index

EVENT_INDEX = "event_index"
"""The projection's name in ``projection_tracking``."""

INDEX_ROWS = BulkTable(
    event_index.name,
    (
        "position", "time", "type", "session_id", "company_id", "stage", "status_before",
        "status_after", "attempt", "worker", "actor", "error_type",
    ),
    (
        "bigint", "timestamptz", "text", "uuid", "uuid", "text", "text", "text", "int", "text",
        "text", "text",
    ),
    ("position",),
)  # fmt: skip

Workers = dict[str, tuple[int, str]]
"""Stage -> (attempt, worker) of the last attempt started."""
SessionState = tuple[UUID | None, Statuses, Workers]
"""A session's company, its stages' statuses after the last indexed event, and who runs
which attempt: every later event of an attempt is indexed with its worker, so `--worker`
finds what a worker did, not only what it started."""


class EventIndexProjection:
    name = EVENT_INDEX
    topics = tuple(cls.TOPIC for cls in SESSION_EVENTS + COMPANY_EVENTS)
    tables: tuple[str, ...] = (event_index.name,)

    def __init__(self, cache_size: int = 100_000) -> None:
        self.cache_size = cache_size
        self._sessions: OrderedDict[UUID, SessionState] = OrderedDict()

    def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        raise TypeError("the event index needs positions: the runner calls apply_at")

    def apply_at(self, conn: Connection, events: Sequence[Event], positions: Sequence[int]) -> None:
        found = [facts(e) for e in events]
        touched = {f.session_id for f in found if f.session_id is not None}
        self._load(conn, touched - {f.session_id for f in found if f.first})
        rows: list[tuple[Any, ...]] = []
        cache = self._sessions
        for position, f in zip(positions, found, strict=True):
            company_id, before, after, worker = f.company_id, None, None, f.worker
            if f.session_id is not None:
                known_company, statuses, workers = cache.get(f.session_id, (None, {}, {}))
                company_id = company_id or known_company
                moved = next_statuses(statuses, f.type, f.stage)
                if f.stage is not None:
                    before, after = statuses.get(f.stage), moved.get(f.stage)
                    worker = _worker(workers, f.stage, f.attempt, f.worker)
                cache[f.session_id] = (company_id, moved, workers)
                cache.move_to_end(f.session_id)
            rows.append(
                (
                    position,
                    f.time,
                    f.type,
                    f.session_id,
                    company_id,
                    f.stage,
                    before,
                    after,
                    f.attempt,
                    worker,
                    f.actor,
                    f.error_type,
                )
            )
        insert_rows(conn, rows)
        while len(cache) > self.cache_size:
            cache.popitem(last=False)

    def _load(self, conn: Connection, session_ids: set[UUID]) -> None:
        """Brings sessions the cache does not hold back from their indexed rows."""
        missing = [sid for sid in session_ids if sid not in self._sessions]
        if not missing:
            return
        t = event_index.c
        for i in range(0, len(missing), 500):
            chunk = missing[i : i + 500]
            rows = conn.execute(
                select(t.session_id, t.company_id, t.type, t.stage, t.attempt, t.worker)
                .where(t.session_id.in_(chunk))
                .order_by(t.session_id, t.position)
            ).all()
            for row in rows:
                company, statuses, workers = self._sessions.get(row.session_id, (None, {}, {}))
                if row.stage is not None:
                    _worker(workers, row.stage, row.attempt, row.worker)
                self._sessions[row.session_id] = (
                    company or row.company_id,
                    next_statuses(statuses, row.type, row.stage),
                    workers,
                )

    def forget(self) -> None:
        self._sessions.clear()

    def clear(self, conn: Connection) -> None:
        conn.execute(delete(event_index))


def _worker(workers: Workers, stage: str, attempt: int | None, named: str | None) -> str | None:
    """The worker of this event's attempt: the one it names (a start), else the one that
    started the same attempt of the stage; remembers a start in ``workers``."""
    if named is not None and attempt is not None:
        workers[stage] = (attempt, named)
        return named
    known = workers.get(stage)
    return known[1] if known is not None and attempt is not None and known[0] == attempt else None


def insert_rows(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Plain inserts (COPY on PostgreSQL): a position is indexed once, as the runner moves
    the projection's position in the same transaction; an upsert through a staging table
    cost a quarter of the catch-up."""
    if not rows:
        return
    cols = ", ".join(INDEX_ROWS.columns)
    if conn.dialect.name != "postgresql":
        INDEX_ROWS.upsert(conn, rows)
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"COPY {INDEX_ROWS.name} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
