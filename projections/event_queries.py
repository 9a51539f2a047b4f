"""Queries of the event index: which log positions match an auditor's filters.

Every filter is a column of `event_index` with an index that starts with it (or the primary
key, scanned in position order, when the filter keeps most rows), so a page of the newest
matches reads about as many index entries as it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, Select, select

from projections.schema import companies, event_index, sessions


@dataclass(frozen=True)
class EventQuery:
    """What to look for; empty means "any". Time and position bounds: ``since`` inclusive,
    ``until`` exclusive; ``after`` (exclusive) is where a follower last stopped."""

    session_id: UUID | None = None
    company_id: UUID | None = None
    stages: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    actor: str | None = None
    worker: str | None = None
    error_type: str | None = None
    since_time: datetime | None = None
    until_time: datetime | None = None
    since_position: int | None = None
    until_position: int | None = None
    after: int | None = None
    limit: int = 100
    oldest_first: bool = False


def _filtered(q: EventQuery, types: Sequence[str]) -> Select[Any]:
    t = event_index.c
    query = select(event_index)
    if q.session_id is not None:
        query = query.where(t.session_id == q.session_id)
    if q.company_id is not None:
        query = query.where(t.company_id == q.company_id)
    if q.stages:
        query = query.where(t.stage.in_(q.stages))
    if len(types) == 1:
        query = query.where(t.type == types[0])
    elif types:
        query = query.where(t.type.in_(types))
    if q.actor is not None:
        query = query.where(t.actor == q.actor)
    if q.worker is not None:
        query = query.where(t.worker == q.worker)
    if q.error_type is not None:
        query = query.where(t.error_type == q.error_type)
    if q.since_time is not None:
        query = query.where(t.time >= q.since_time)
    if q.until_time is not None:
        query = query.where(t.time < q.until_time)
    if q.since_position is not None:
        query = query.where(t.position >= q.since_position)
    if q.until_position is not None:
        query = query.where(t.position < q.until_position)
    if q.after is not None:
        query = query.where(t.position > q.after)
    order = t.position.asc() if q.oldest_first else t.position.desc()
    return query.order_by(order).limit(q.limit)


def find_events(conn: Connection, q: EventQuery) -> list[Row[Any]]:
    """The index rows of the matching events, newest first unless ``oldest_first``.

    Several types are asked one type at a time and merged: each part then walks its own
    (company, type, position) or (type, position) index in order and stops after ``limit``
    rows, where one ``type IN (...)`` would have to collect and sort every match first."""
    if len(q.types) <= 1:
        return list(conn.execute(_filtered(q, q.types)).all())
    rows: list[Row[Any]] = []
    for kind in dict.fromkeys(q.types):
        rows.extend(conn.execute(_filtered(q, (kind,))).all())
    rows.sort(key=lambda r: r.position, reverse=not q.oldest_first)
    return rows[: q.limit]


def external_ids(conn: Connection, session_ids: Sequence[UUID]) -> dict[UUID, str]:
    ids = list(dict.fromkeys(session_ids))
    found: dict[UUID, str] = {}
    for i in range(0, len(ids), 500):
        rows = conn.execute(
            select(sessions.c.session_id, sessions.c.external_id).where(
                sessions.c.session_id.in_(ids[i : i + 500])
            )
        )
        found.update({r.session_id: r.external_id for r in rows})
    return found


def company_names(conn: Connection, company_ids: Sequence[UUID]) -> dict[UUID, str]:
    ids = list(dict.fromkeys(company_ids))
    if not ids:
        return {}
    rows = conn.execute(
        select(companies.c.company_id, companies.c.name).where(companies.c.company_id.in_(ids))
    )
    return {r.company_id: r.name for r in rows}
