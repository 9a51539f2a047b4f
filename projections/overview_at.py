"""The overview as it was at any time T, and what changed between two times.

The counts at T are a prefix sum over the overview history's buckets (the days before T's
day, then the hours, minutes and seconds up to T's second: at most ~150 buckets' rows),
plus a replay of T's own second, exact to the microsecond: the sessions with an event
stamped in [T's second, T] (found in the event index) are folded from the log, and what
their events with an effective time in that window changed is added.

Everything is read in one snapshot at the overview history's position, so a daemon writing
meanwhile changes nothing in the answer.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent
from sqlalchemy import Connection, Engine, and_, bindparam, or_, select, text

from domain.stages import STAGE_ORDER
from projections.event_index import EVENT_INDEX
from projections.overview_fold import NONE, OVERVIEW_EVENTS, Change, Track, code_buckets, step
from projections.overview_history import (
    COST,
    DELTA,
    OVERVIEW_HISTORY,
    WIDTHS,
    at_second,
    decode,
    second_of,
)
from projections.schema import event_index, overview_buckets, projection_tracking

ActivityKey = tuple[str, str, str]
"""(kind, stage, detail)"""


@dataclass(frozen=True)
class LogSource:
    """Where the stored events are, and how to decode them (the replay of T's second)."""

    table: str
    schema: str | None
    mapper: Mapper[Any]

    def name(self, dialect: str) -> str:
        if dialect == "postgresql" and self.schema:
            return f'"{self.schema}"."{self.table}"'
        return f'"{self.table}"'


@dataclass
class Prefix:
    """Everything that took effect at or before ``at``."""

    at: datetime
    position: int
    """The log position the answer stands at (the overview history's)."""
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(stage, bucket) -> sessions; buckets are the statuses and RETRY_SCHEDULED."""
    activity: dict[ActivityKey, tuple[int, Decimal | None]] = field(default_factory=dict)
    replayed_sessions: int = 0
    """Sessions folded from the log for T's own second (what the answer's time depends on)."""

    def add(self, key: ActivityKey, count: int, cost: Decimal | None) -> None:
        old_count, old_cost = self.activity.get(key, (0, None))
        if old_cost is not None and cost is not None:
            cost = old_cost + cost
        elif cost is None:
            cost = old_cost
        self.activity[key] = (old_count + count, cost)


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """One read transaction that sees one state of every table (SQLite's read transaction
    is one already; PostgreSQL's default gives each statement its own)."""
    options: dict[str, Any] = {}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ"
    with engine.connect().execution_options(**options) as conn, conn.begin():
        yield conn


def positions(conn: Connection) -> dict[str, int]:
    t = projection_tracking.c
    rows = conn.execute(
        select(t.name, t.position).where(t.name.in_((OVERVIEW_HISTORY, EVENT_INDEX)))
    ).all()
    return {name: int(p) for name, p in rows}


def prefix(
    conn: Connection, log: LogSource, at: datetime, company_id: UUID | None = None
) -> Prefix:
    """The overview and the activity sums at ``at``. Call inside one transaction (a
    snapshot: REPEATABLE READ on PostgreSQL) so every read sees the same log position."""
    stood = positions(conn)
    result = Prefix(at, stood.get(OVERVIEW_HISTORY, 0))
    second = second_of(at)
    ranges = _ranges(second)
    _sum_buckets(conn, ranges, company_id, result)
    _replay_second(conn, log, at_second(second), at, company_id, stood, result)
    return result


def _ranges(second: int) -> list[tuple[int, int | None, int]]:
    """(width, from, to) of the buckets that lie wholly before ``second``: all days before
    its day, then each finer width from where the coarser one stopped."""
    ranges: list[tuple[int, int | None, int]] = []
    start: int | None = None
    for width in WIDTHS:
        end = second - second % width
        ranges.append((width, start, end))
        start = end
    return ranges


def _sum_buckets(
    conn: Connection,
    ranges: list[tuple[int, int | None, int]],
    company_id: UUID | None,
    result: Prefix,
) -> None:
    c = overview_buckets.c
    parts = []
    for width, start, end in ranges:
        cond = and_(c.width == width, c.bucket < end)
        if start is not None:
            cond = and_(cond, c.bucket >= start)
        parts.append(cond)
    wanted = company_id.hex if company_id is not None else None
    counts: Counter[str] = Counter()
    costs: dict[str, Decimal] = {}
    for (stored,) in conn.execute(select(c.counts).where(or_(*parts))).all():
        for company, values in decode(stored).items():
            if wanted is not None and company != wanted:
                continue
            for key, value in values.items():
                if key.startswith(COST):
                    costs[key] = costs.get(key, Decimal(0)) + Decimal(value)
                else:
                    counts[key] += value
    for key, n in counts.items():
        kind, stage, detail = key.split("|", 2)
        if kind == DELTA:
            result.counts[(stage, detail)] += n
        else:
            cost = costs.get(f"{COST}|{stage}|{detail}") if kind == "ai_call" else None
            result.add((kind, stage, detail), n, cost)


# ---------------------------------------------------------------- T's own second
def _replay_second(
    conn: Connection,
    log: LogSource,
    start: datetime,
    at: datetime,
    company_id: UUID | None,
    stood: dict[str, int],
    result: Prefix,
) -> None:
    """Adds what took effect in [start, at]: the sessions with an event stamped there are
    the only ones whose effective time can fall there (it is always one of their stamps)."""
    position = result.position
    candidates = _stamped_between(conn, start, at, position)
    indexed = stood.get(EVENT_INDEX, 0)
    if indexed < position:  # the index is behind: look at the rest of the log directly
        candidates |= _stamped_in_log(conn, log, indexed, position, start, at)
    result.replayed_sessions = len(candidates)
    for events in _session_events(conn, log, sorted(candidates), position):
        before: Track | None = None
        after: Track | None = None
        track: Track | None = None
        window: list[Change] = []
        for event in events:
            track, change = step(track, event)
            eff = track.eff
            assert eff is not None
            if eff < start:
                before = track
            if eff <= at:
                after = track
                if change is not None and eff >= start:
                    window.append(change)
            else:
                break
        if after is None or after.company_id is None:
            continue
        if company_id is not None and after.company_id != company_id:
            continue
        old = before.codes if before is not None else NONE
        for stage_codes, sign in ((old, -1), (after.codes, 1)):
            for stage, letter in zip(_STAGES, stage_codes, strict=True):
                for b in code_buckets(letter):
                    result.counts[(stage, b)] += sign
        for change in window:
            for kind, stage, detail, cost in change.activity:
                result.add((kind, stage, detail), 1, cost)


def _stamped_between(conn: Connection, start: datetime, at: datetime, position: int) -> set[UUID]:
    c = event_index.c
    query = (
        select(c.session_id)
        .where(c.time >= start, c.time <= at, c.session_id.is_not(None), c.position <= position)
        .distinct()
    )
    return {sid for (sid,) in conn.execute(query).all()}


_TOPICS = tuple(cls.TOPIC for cls in OVERVIEW_EVENTS)


def _position_column(dialect: str) -> str:
    return "notification_id" if dialect == "postgresql" else "rowid"


def _stamped_in_log(
    conn: Connection, log: LogSource, after: int, upto: int, start: datetime, at: datetime
) -> set[UUID]:
    pos = _position_column(conn.dialect.name)
    query = text(
        f"SELECT originator_id, originator_version, topic, state FROM "
        f"{log.name(conn.dialect.name)} WHERE {pos} > :after AND {pos} <= :upto"
    )
    found = set()
    for row in conn.execute(query, {"after": after, "upto": upto}).all():
        event = _decode(log, row)
        stamp = getattr(event, "timestamp", None)
        if stamp is not None and start <= stamp <= at:
            found.add(_uuid(row[0]))
    return found


def _session_events(
    conn: Connection, log: LogSource, ids: list[UUID], upto: int
) -> Iterator[list[Any]]:
    """Each session's events that the overview reads, up to ``upto``, in version order."""
    dialect = conn.dialect.name
    pos = _position_column(dialect)
    query = text(
        f"SELECT originator_id, originator_version, topic, state FROM {log.name(dialect)} "
        f"WHERE originator_id IN :ids AND topic IN :topics AND {pos} <= :upto "
        "ORDER BY originator_id, originator_version"
    ).bindparams(bindparam("ids", expanding=True), bindparam("topics", expanding=True))
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        keys: list[Any] = [sid.hex for sid in chunk] if dialect == "sqlite" else chunk
        groups: dict[UUID, list[Any]] = defaultdict(list)
        rows = conn.execute(query, {"ids": keys, "topics": list(_TOPICS), "upto": upto})
        for row in rows.all():
            groups[_uuid(row[0])].append(_decode(log, row))
        yield from groups.values()


def _decode(log: LogSource, row: Any) -> Any:
    state = row[3].encode("utf-8") if isinstance(row[3], str) else bytes(row[3])
    return log.mapper.to_domain_event(StoredEvent(_uuid(row[0]), int(row[1]), str(row[2]), state))


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


_STAGES = tuple(s.value for s in STAGE_ORDER)
