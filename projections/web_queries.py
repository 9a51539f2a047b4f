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


def _conditions(f: SessionFilter) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if f.stage is not None:
        found.append(sss.c.stage == f.stage.value)
    if f.status is not None:
        found.append(sss.c.status == f.status.value)
    if f.stage is None and f.status is None and f.error_type is None:
        # One row per session: its import row stands for it (as `livedash sessions` does).
        found.append(sss.c.stage == Stage.CSV_IMPORT.value)
    if f.company_id is not None:
        found.append(sss.c.company_id == f.company_id)
    if f.error_type is not None:
        found.append(sss.c.error_type == f.error_type)
    if f.updated_from is not None:
        found.append(sss.c.updated_at >= f.updated_from)
    if f.updated_to is not None:
        found.append(sss.c.updated_at < f.updated_to)
    return found


def _after(cursor: Cursor, sort: SortKey) -> ColumnElement[bool]:
    """Rows strictly after ``cursor``: (updated_at, session_id, stage) in the sort's order,
    spelled out (row-value comparison is not portable through SQLAlchemy's types)."""
    u, s, st = sss.c.updated_at, sss.c.session_id, sss.c.stage
    if sort == "updated_desc":
        return or_(
            u < cursor.updated_at,
            and_(u == cursor.updated_at, s < cursor.session_id),
            and_(u == cursor.updated_at, s == cursor.session_id, st < cursor.stage),
        )
    return or_(
        u > cursor.updated_at,
        and_(u == cursor.updated_at, s > cursor.session_id),
        and_(u == cursor.updated_at, s == cursor.session_id, st > cursor.stage),
    )


def session_page(
    conn: Connection,
    f: SessionFilter,
    sort: SortKey = "updated_desc",
    after: Cursor | None = None,
    limit: int = 50,
) -> SessionPage:
    """One page of stage rows matching ``f``, ``limit`` long, starting after ``after``."""
    order: Sequence[Any]
    if sort == "updated_desc":
        order = (sss.c.updated_at.desc(), sss.c.session_id.desc(), sss.c.stage.desc())
    else:
        order = (sss.c.updated_at, sss.c.session_id, sss.c.stage)
    query = select(sss).where(*_conditions(f)).order_by(*order).limit(limit + 1)
    if after is not None:
        query = query.where(_after(after, sort))
    rows = [StageRow.model_validate(r._asdict()) for r in conn.execute(query).all()]
    more = len(rows) > limit
    rows = rows[:limit]
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


def failure_groups(conn: Connection, company_id: UUID | None = None) -> list[FailureGroup]:
    """FAILED stage rows grouped by stage and error type, largest group first; one index
    range (stage, status) per stage."""
    groups: list[FailureGroup] = []
    for stage in STAGE_ORDER[1:]:
        query = (
            select(
                sss.c.error_type,
                func.count().label("n"),
                func.count(sss.c.retry_at).label("retrying"),
                func.max(sss.c.error_message).label("sample"),
                func.max(sss.c.updated_at).label("latest"),
            )
            .where(sss.c.stage == stage.value, sss.c.status == Status.FAILED.value)
            .group_by(sss.c.error_type)
        )
        if company_id is not None:
            query = query.where(sss.c.company_id == company_id)
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
    return sorted(groups, key=lambda g: (-g.count, g.stage, g.error_type))


def error_types(conn: Connection) -> list[str]:
    """Error types of the stages that failed (for the Sessions page's filter)."""
    query = (
        select(sss.c.error_type)
        .where(sss.c.status == Status.FAILED.value, sss.c.error_type.is_not(None))
        .distinct()
        .order_by(sss.c.error_type)
        .limit(100)
    )
    return [str(r[0]) for r in conn.execute(query).all()]


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
