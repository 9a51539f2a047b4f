"""Queries behind the status web page that the CLI reports do not already answer: a keyset page
of stage rows, failures grouped by cause, and completions per stage over the last hour.

Every query reads an indexed slice (never OFFSET, never a scan of all sessions), so a page
costs the same on page 1 and page 10,000."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Connection, Integer, and_, cast, func, literal, or_, select

from domain.stages import STAGE_ORDER, Stage, Status
from projections.models import StageRow
from projections.schema import event_index, session_stage_status, stage_ready

sss = session_stage_status
SortKey = Literal["updated_desc", "updated_asc"]
SORTS: tuple[SortKey, ...] = ("updated_desc", "updated_asc")


class SessionFilter(BaseModel):
    """What the Sessions page filters on; ``None`` is "any"."""

    company_id: UUID | None = None
    stage: Stage | None = None
    status: Status | None = None
    error_type: str | None = None
    updated_from: datetime | None = None
    updated_to: datetime | None = None
    """Exclusive upper bound."""


class Cursor(BaseModel):
    """The last row of a page: the next page starts strictly after it in the sort order."""

    updated_at: datetime
    session_id: UUID
    stage: str


class SessionPage(BaseModel):
    rows: list[StageRow]
    next: Cursor | None
    """None on the last page."""


def _slices(f: SessionFilter) -> list[tuple[Stage, Status]]:
    """The (stage, status) index ranges a filter reads. Without either, one row per session:
    its import row (always COMPLETED); an error type is a failure's, so it means FAILED."""
    if f.stage is None and f.status is None and f.error_type is None:
        return [(Stage.CSV_IMPORT, Status.COMPLETED)]
    statuses = [f.status] if f.status else [Status.FAILED] if f.error_type else list(Status)
    stages = [f.stage] if f.stage else list(STAGE_ORDER)
    return [(stage, status) for stage in stages for status in statuses]


def _conditions(f: SessionFilter) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if f.company_id is not None:
        found.append(sss.c.company_id == f.company_id)
    if f.error_type is not None:
        found.append(sss.c.error_type == f.error_type)
    if f.updated_from is not None:
        found.append(sss.c.updated_at >= f.updated_from)
    if f.updated_to is not None:
        found.append(sss.c.updated_at < f.updated_to)
    return found


def _after(cursor: Cursor, sort: SortKey) -> list[ColumnElement[bool]]:
    """Rows strictly after ``cursor`` in (updated_at, session_id, stage) order, spelled out
    (row values are not portable through SQLAlchemy's types), with a plain bound on
    updated_at first so the index range starts at the cursor instead of the table's end."""
    u, s, st = sss.c.updated_at, sss.c.session_id, sss.c.stage
    at = cursor.updated_at
    if sort == "updated_desc":
        return [
            u <= at,
            or_(
                u < at,
                and_(u == at, s < cursor.session_id),
                and_(u == at, s == cursor.session_id, st < cursor.stage),
            ),
        ]
    return [
        u >= at,
        or_(
            u > at,
            and_(u == at, s > cursor.session_id),
            and_(u == at, s == cursor.session_id, st > cursor.stage),
        ),
    ]


def _key(row: StageRow) -> tuple[datetime, UUID, str]:
    return (row.updated_at, row.session_id, row.stage)


def session_page(
    conn: Connection,
    f: SessionFilter,
    sort: SortKey = "updated_desc",
    after: Cursor | None = None,
    limit: int = 50,
) -> SessionPage:
    """One page of stage rows matching ``f``, ``limit`` long, starting after ``after``.

    Each (stage, status) pair is one range of the (stage, status, updated_at) index (or the
    one with the company), read for at most ``limit + 1`` rows; the ranges are merged here.
    So a page costs a few index seeks at any size, instead of sorting every matching row."""
    desc = sort == "updated_desc"
    order: Sequence[Any]
    if desc:
        order = (sss.c.updated_at.desc(), sss.c.session_id.desc(), sss.c.stage.desc())
    else:
        order = (sss.c.updated_at, sss.c.session_id, sss.c.stage)
    common = _conditions(f) + (_after(after, sort) if after is not None else [])
    found: list[StageRow] = []
    for stage, status in _slices(f):
        query = (
            select(sss)
            .where(sss.c.stage == stage.value, sss.c.status == status.value, *common)
            .order_by(*order)
            .limit(limit + 1)
        )
        found.extend(StageRow.model_validate(r._asdict()) for r in conn.execute(query).all())
    found.sort(key=_key, reverse=desc)
    more = len(found) > limit
    rows = found[:limit]
    last = rows[-1] if more and rows else None
    cursor = (
        Cursor(updated_at=last.updated_at, session_id=last.session_id, stage=last.stage)
        if last is not None
        else None
    )
    return SessionPage(rows=rows, next=cursor)


class FailureGroup(BaseModel):
    stage: str
    error_type: str
    count: int
    retrying: int
    """Of ``count``, those with a retry scheduled (the daemon will try again by itself)."""
    sample_message: str | None
    latest: datetime | None


GROUP_SAMPLE = 5000
"""Failures per stage that are grouped: the most recent ones (an index range). Counting a
hundred thousand failures by type would read every one of them (0.5 s at a million
sessions on PostgreSQL); the stage's exact total comes from the overview counters."""


class FailureGroups(BaseModel):
    groups: list[FailureGroup]
    sampled: dict[str, int]
    """Stage -> its FAILED total, for the stages with more failures than were grouped."""


def failure_groups(
    conn: Connection, totals: dict[str, int], company_id: UUID | None = None
) -> FailureGroups:
    """FAILED stage rows grouped by stage and error type, largest group first: per stage, the
    ``GROUP_SAMPLE`` most recent (all of them when there are no more); ``totals`` is each
    stage's FAILED count (from the overview), to say when a stage was sampled."""
    groups: list[FailureGroup] = []
    sampled: dict[str, int] = {}
    for stage in STAGE_ORDER[1:]:
        if not totals.get(stage.value):
            continue
        recent = (
            select(sss.c.error_type, sss.c.retry_at, sss.c.error_message, sss.c.updated_at)
            .where(sss.c.stage == stage.value, sss.c.status == Status.FAILED.value)
            .order_by(sss.c.updated_at.desc())
            .limit(GROUP_SAMPLE)
        )
        if company_id is not None:
            recent = recent.where(sss.c.company_id == company_id)
        r_ = recent.subquery()
        query = select(
            r_.c.error_type,
            func.count().label("n"),
            func.count(r_.c.retry_at).label("retrying"),
            func.max(r_.c.error_message).label("sample"),
            func.max(r_.c.updated_at).label("latest"),
        ).group_by(r_.c.error_type)
        if totals[stage.value] > GROUP_SAMPLE:
            sampled[stage.value] = totals[stage.value]
        for r in conn.execute(query).all():
            groups.append(
                FailureGroup(
                    stage=stage.value,
                    error_type=r.error_type or "unknown",
                    count=int(r.n),
                    retrying=int(r.retrying),
                    sample_message=r.sample,
                    latest=r.latest,
                )
            )
    ordered = sorted(groups, key=lambda g: (-g.count, g.stage, g.error_type))
    return FailureGroups(groups=ordered, sampled=sampled)


class Throughput(BaseModel):
    start: datetime
    bucket_seconds: int
    series: dict[str, list[int]]
    """Stage -> completions per bucket, oldest first (every worker stage present)."""


def throughput(conn: Connection, now: datetime, minutes: int = 60, buckets: int = 12) -> Throughput:
    """Stage completions per bucket over the last ``minutes``, from the event index's time
    index (a range of recent rows, whatever the log's size)."""
    width = minutes * 60 // buckets
    start = now - timedelta(minutes=minutes)
    series = {s.value: [0] * buckets for s in STAGE_ORDER[1:]}
    slot = _bucket(conn, start, width).label("slot")
    rows = conn.execute(
        select(event_index.c.stage, slot, func.count())
        .where(
            event_index.c.time >= start,
            event_index.c.type.in_(("StageCompleted", "StageSkipped")),
        )
        .group_by(event_index.c.stage, slot)
    )
    for stage, i, n in rows:
        if stage in series and i is not None and 0 <= int(i) < buckets:
            series[stage][int(i)] += int(n)
    return Throughput(start=start, bucket_seconds=width, series=series)


def _bucket(conn: Connection, start: datetime, width: int) -> ColumnElement[Any]:
    """The bucket number of an event's time, computed by the database (grouped there)."""
    t = event_index.c.time
    if conn.dialect.name == "postgresql":
        seconds = func.extract("epoch", t) - start.timestamp()
        return func.floor(seconds / width)
    naive = start.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    days = func.julianday(t) - func.julianday(literal(naive))
    return cast(days * 86400.0 / width, Integer)  # truncation: never negative here


def ready_counts(conn: Connection) -> dict[str, int]:
    """PENDING stages that wait only for a worker, per stage (from `stage_ready`); the other
    PENDING ones of a later stage wait behind an earlier stage that is not done. Every
    PENDING TRANSCRIPT_FETCH is ready: its predecessor is the import itself."""
    query = select(stage_ready.c.stage, func.count()).group_by(stage_ready.c.stage)
    return {str(stage): int(n) for stage, n in conn.execute(query).all()}


class ScheduledRetry(BaseModel):
    session_id: UUID
    external_id: str
    stage: str
    retry_at: datetime
    error_type: str | None


def next_retries(conn: Connection, limit: int = 5) -> list[ScheduledRetry]:
    """The failures the daemon will retry soonest (one seek of the (status, retry_at) index)."""
    query = (
        select(sss.c.session_id, sss.c.external_id, sss.c.stage, sss.c.retry_at, sss.c.error_type)
        .where(sss.c.status == Status.FAILED.value, sss.c.retry_at.is_not(None))
        .order_by(sss.c.retry_at)
        .limit(limit)
    )
    return [ScheduledRetry.model_validate(r._asdict()) for r in conn.execute(query).all()]
