"""The overview's history: its net change per time bucket, so `status --at T` adds up a few
hundred rows instead of folding the log.

Each event's change (projections/overview_fold.py) is added to one bucket of every width
(a day, an hour, a minute, a second) at its effective time. A bucket is one row of canonical
JSON, merged in Python: sums (exact decimals for costs) do not depend on how the log was cut
into pages, so a rebuild writes the very same rows (`projections verify` compares them).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, func, select

from projections.bulk import BulkTable
from projections.overview_fold import OVERVIEW_EVENTS, Change, Track, step
from projections.runner import Event
from projections.schema import overview_buckets, overview_sessions

OVERVIEW_HISTORY = "overview_history"
"""The projection's name in ``projection_tracking``."""

WIDTHS: tuple[int, ...] = (86_400, 3_600, 60, 1)
"""Bucket widths in seconds, coarsest first; each divides the one before it."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


SESSION_ROWS = BulkTable(
    overview_sessions.name,
    ("session_id", "company_id", "eff", "codes"),
    ("uuid", "uuid", "timestamptz", "text"),
    ("session_id",),
)


def second_of(at: datetime) -> int:
    """Epoch seconds of the second ``at`` falls in (exact: no float)."""
    return (at - EPOCH) // _SECOND


def at_second(second: int) -> datetime:
    return EPOCH + timedelta(seconds=second)


class OverviewHistoryProjection:
    name = OVERVIEW_HISTORY
    topics = tuple(cls.TOPIC for cls in OVERVIEW_EVENTS)
    tables: tuple[str, ...] = (
        overview_buckets.name,
        overview_sessions.name,
    )

    def __init__(self, cache_sessions: int = 100_000) -> None:
        self.cache_sessions = cache_sessions
        self._sessions: OrderedDict[UUID, Track] = OrderedDict()
        self._newest: dict[int, int] | None = None
        """The latest bucket stored per width, once read (None: not known)."""

    def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        self._load(conn, _stored_before(events))
        if self._newest is None:
            self._newest = _newest_buckets(conn)
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
        write_changes(conn, changes, self._newest)
        SESSION_ROWS.upsert(
            conn, [(sid, t.company_id, t.eff, t.codes) for sid, t in sorted(touched.items())]
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
        self._newest = None

    def clear(self, conn: Connection) -> None:
        conn.execute(delete(overview_sessions))
        conn.execute(delete(overview_buckets))
        self._sessions.clear()
        self._newest = {}


def _stored_before(events: Sequence[Event]) -> set[UUID]:
    """The sessions of the page that may have a stored row: all but those whose first event
    here is their creation (a row is written only by a session's earlier events)."""
    first: dict[UUID, int] = {}
    for e in events:
        first.setdefault(e.originator_id, e.originator_version)
    return {sid for sid, version in first.items() if version > 1}


def _newest_buckets(conn: Connection) -> dict[int, int]:
    """One index probe per width (the key is width, bucket)."""
    t = overview_buckets.c
    found: dict[int, int] = {}
    for width in WIDTHS:
        newest = conn.execute(select(func.max(t.bucket)).where(t.width == width)).scalar()
        if newest is not None:
            found[width] = int(newest)
    return found


Tally = dict[str, dict[str, Any]]
"""A bucket's counts: company (hex) -> key -> value. Keys are ``kind|stage|detail``: kind
``=`` the net change of the (stage, status=detail) count, ``$`` a cost (a decimal string),
anything else a number of events (``moved``, ``imported``, ``failed``, ``reset``, ``ai_call``)."""
DELTA = "="
COST = "$"


def write_changes(
    conn: Connection, changes: Sequence[Change], newest: dict[int, int] | None = None
) -> None:
    """Adds the changes to their bucket of every width: one row per bucket touched.

    The changes are summed per second first and the seconds rolled up into the wider
    buckets (events cluster in time: a page touches few seconds). ``newest``, the latest
    bucket stored per width when known, spares the read of buckets that cannot exist yet."""
    tallies = _by_bucket(changes)
    if not tallies:
        return
    unknown = [place for place in tallies if newest is None or place[1] <= newest.get(place[0], -1)]
    stored = _stored(conn, unknown)
    rows: list[tuple[int, int, str]] = []
    gone: list[tuple[int, int]] = []
    for place in sorted(tallies):
        merged = stored.get(place, {})
        merge(merged, tallies[place])
        if merged:
            rows.append((*place, encode(merged)))
        elif place in stored:
            gone.append(place)
    _upsert(conn, rows)
    if newest is not None:
        for width, bucket in tallies:
            if bucket > newest.get(width, -1):
                newest[width] = bucket
    t = overview_buckets.c
    for width, bucket in gone:
        conn.execute(delete(overview_buckets).where(t.width == width, t.bucket == bucket))


def _by_bucket(changes: Sequence[Change]) -> dict[tuple[int, int], Tally]:
    seconds: dict[int, Tally] = {}
    for change in changes:
        tally = seconds.setdefault(second_of(change.eff), {})
        into = tally.setdefault(change.company_id.hex, {})
        for key, value in counted_keys(change):
            into[key] = into.get(key, 0) + value  # a cost stays a Decimal until encoded
    tallies: dict[tuple[int, int], Tally] = {(1, sec): t for sec, t in seconds.items()}
    for width in WIDTHS[:-1]:
        for sec, tally in seconds.items():
            merge(tallies.setdefault((width, sec - sec % width), {}), tally)
    return {place: tally for place, tally in tallies.items() if tally}


def counted_keys(change: Change) -> list[tuple[str, Any]]:
    """The change as (key, amount) pairs of a tally."""
    found: list[tuple[str, Any]] = [
        (f"{DELTA}|{stage}|{status}", n) for stage, status, n in change.deltas()
    ]
    for kind, stage, detail, cost in change.activity:
        found.append((f"{kind}|{stage}|{detail}", 1))
        if cost is not None:
            found.append((f"{COST}|{stage}|{detail}", cost))
    return found


def merge(into: Tally, more: Tally) -> None:
    """Adds ``more`` to ``into``; keys and companies that come to nothing disappear, so the
    result does not depend on how the log was cut into pages."""
    for company, values in more.items():
        target = into.setdefault(company, {})
        for key, value in values.items():
            if key.startswith(COST):
                target[key] = Decimal(target.get(key, 0)) + Decimal(value)
            else:
                total = target.get(key, 0) + value
                if total:
                    target[key] = total
                else:
                    target.pop(key, None)
        if not target:
            del into[company]


def encode(tally: Tally) -> str:
    """Canonical JSON: costs as decimal strings, so a rebuild writes the very same text."""
    return json.dumps(tally, sort_keys=True, separators=(",", ":"), default=str)


def decode(text: str) -> Tally:
    found: Tally = json.loads(text)
    return found


def _stored(conn: Connection, keys: list[tuple[int, int]]) -> dict[tuple[int, int], Tally]:
    t = overview_buckets.c
    by_width: dict[int, list[int]] = {}
    for width, bucket in keys:
        by_width.setdefault(width, []).append(bucket)
    found: dict[tuple[int, int], Tally] = {}
    for width, buckets in by_width.items():
        for i in range(0, len(buckets), 900):
            query = select(t.bucket, t.counts).where(
                t.width == width, t.bucket.in_(buckets[i : i + 900])
            )
            for bucket, text in conn.execute(query).all():
                found[(width, int(bucket))] = decode(text)
    return found


def _upsert(conn: Connection, rows: list[tuple[int, int, str]]) -> None:
    """One prepared statement for the page (Core's per-row processing costs more)."""
    if not rows:
        return
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    conn.exec_driver_sql(
        f"INSERT INTO {overview_buckets.name} (width, bucket, counts) "
        f"VALUES ({mark}, {mark}, {mark}) "
        "ON CONFLICT (width, bucket) DO UPDATE SET counts = excluded.counts",
        rows,
    )
