"""The overview's history: its net change per time bucket, so `status --at T` adds up a few
hundred rows instead of folding the log.

Each event's change (projections/overview_fold.py) is added to one bucket of every width
(a day, an hour, a minute, a second) at its effective time. Sums of integers do not depend
on how the log was cut into pages, so a rebuild writes the very same rows (`projections
verify` compares them). Cost sums are added as exact decimals in Python: SQLite would add
the stored text as floats.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, and_, delete, or_, select

from projections.overview_fold import OVERVIEW_EVENTS, Change, Track, step
from projections.runner import Event
from projections.schema import overview_activity, overview_deltas, overview_sessions
from projections.upsert import upsert

OVERVIEW_HISTORY = "overview_history"
"""The projection's name in ``projection_tracking``."""

WIDTHS: tuple[int, ...] = (86_400, 3_600, 60, 1)
"""Bucket widths in seconds, coarsest first; each divides the one before it."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def second_of(at: datetime) -> int:
    """Epoch seconds of the second ``at`` falls in (exact: no float)."""
    return (at - EPOCH) // _SECOND


def at_second(second: int) -> datetime:
    return EPOCH + timedelta(seconds=second)


ActivityKey = tuple[int, int, UUID, str, str, str]
"""(width, bucket, company, kind, stage, detail)"""


class OverviewHistoryProjection:
    name = OVERVIEW_HISTORY
    topics = tuple(cls.TOPIC for cls in OVERVIEW_EVENTS)
    tables: tuple[str, ...] = (
        overview_deltas.name,
        overview_activity.name,
        overview_sessions.name,
    )

    def __init__(self, cache_sessions: int = 100_000) -> None:
        self.cache_sessions = cache_sessions
        self._sessions: OrderedDict[UUID, Track] = OrderedDict()

    def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        self._load(conn, {e.originator_id for e in events})
        cache = self._sessions
        changes: list[Change] = []
        touched: dict[UUID, Track] = {}
        for event in events:
            sid = event.originator_id
            track, change = step(cache.get(sid), event)
            cache[sid] = touched[sid] = track
            cache.move_to_end(sid)
            if change is not None:
                changes.append(change)
        write_changes(conn, changes)
        upsert(
            conn,
            overview_sessions,
            [
                {"session_id": sid, "company_id": t.company_id, "eff": t.eff, "codes": t.codes}
                for sid, t in sorted(touched.items())
            ],
            ("session_id",),
        )
        while len(cache) > self.cache_sessions:
            cache.popitem(last=False)

    def _load(self, conn: Connection, session_ids: Iterable[UUID]) -> None:
        missing = sorted(sid for sid in session_ids if sid not in self._sessions)
        t = overview_sessions.c
        for i in range(0, len(missing), 500):
            rows = conn.execute(
                select(t.session_id, t.company_id, t.eff, t.codes).where(
                    t.session_id.in_(missing[i : i + 500])
                )
            ).all()
            for sid, company, eff, codes in rows:
                self._sessions[sid] = Track(company, eff, codes)

    def forget(self) -> None:
        self._sessions.clear()

    def clear(self, conn: Connection) -> None:
        conn.execute(delete(overview_sessions))
        conn.execute(delete(overview_activity))
        conn.execute(delete(overview_deltas))


def write_changes(conn: Connection, changes: Sequence[Change]) -> None:
    """Adds the changes to their buckets of every width: a few rows per page."""
    deltas: Counter[tuple[int, int, UUID, str, str]] = Counter()
    counts: Counter[ActivityKey] = Counter()
    costs: dict[ActivityKey, Decimal] = {}
    for change in changes:
        second = second_of(change.eff)
        for width in WIDTHS:
            bucket = second - second % width
            for stage, status, n in change.deltas():
                deltas[(width, bucket, change.company_id, stage, status)] += n
            for kind, stage, detail, cost in change.activity:
                key = (width, bucket, change.company_id, kind, stage, detail)
                counts[key] += 1
                if cost is not None:
                    costs[key] = costs.get(key, Decimal(0)) + cost
    _write_deltas(conn, deltas)
    _write_activity(conn, counts, costs)


def _write_deltas(conn: Connection, deltas: Counter[tuple[int, int, UUID, str, str]]) -> None:
    rows = [
        {"width": w, "bucket": b, "company_id": c, "stage": s, "status": st, "delta": n}
        for (w, b, c, s, st), n in sorted(deltas.items(), key=lambda kv: str(kv[0]))
        if n
    ]
    upsert(
        conn,
        overview_deltas,
        rows,
        ("width", "bucket", "company_id", "stage", "status"),
        add=("delta",),
    )
    if rows:  # a count that went up and down again in another page: no row, as a rebuild
        conn.execute(delete(overview_deltas).where(overview_deltas.c.delta == 0))


def _write_activity(
    conn: Connection, counts: Counter[ActivityKey], costs: dict[ActivityKey, Decimal]
) -> None:
    if not counts:
        return
    t = overview_activity.c
    key_columns = (t.width, t.bucket, t.company_id, t.kind, t.stage, t.detail)
    buckets = sorted({(k[0], k[1]) for k in counts})
    stored: dict[ActivityKey, tuple[int, Decimal | None]] = {}
    for i in range(0, len(buckets), 200):
        chunk = buckets[i : i + 200]
        where = or_(*(and_(t.width == w, t.bucket == b) for w, b in chunk))
        for row in conn.execute(select(*key_columns, t.count, t.cost_eur).where(where)).all():
            stored[tuple(row[:6])] = (int(row[6]), row[7])
    rows: list[dict[str, Any]] = []
    for key, n in sorted(counts.items(), key=lambda kv: str(kv[0])):
        old_count, old_cost = stored.get(key, (0, None))
        cost = costs.get(key)
        if old_cost is not None:
            cost = old_cost + (cost or Decimal(0))
        w, b, c, kind, stage, detail = key
        rows.append(
            {"width": w, "bucket": b, "company_id": c, "kind": kind, "stage": stage,
             "detail": detail, "count": old_count + n, "cost_eur": cost}
        )  # fmt: skip
    upsert(
        conn, overview_activity, rows, ("width", "bucket", "company_id", "kind", "stage", "detail")
    )
