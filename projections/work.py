"""Queries the daemon asks of the read side: which companies there are, what is due, what
runs, what wakes next."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, Select, String, cast, exists, func, or_, select

from domain.partitions import last_bytes
from domain.stages import READY_WHEN_PREVIOUS, Stage, Status
from domain.urls import DEFAULT_PORTS
from projections.ready import QUEUED
from projections.schema import companies as companies_table
from projections.schema import session_stage_status as sss
from projections.schema import sessions as sessions_table
from projections.schema import stage_ready


def not_from_origins(column: Any, origins: Sequence[str]) -> list[Any]:
    """The condition that leaves out sessions whose transcript URL is at one of ``origins``
    (``scheme://host:port``, as the breakers name them). Asked only while a breaker is open."""
    if not origins:
        return []
    url = func.lower(sessions_table.c.transcript_url)
    matches = [url.like(p, escape="\\") for o in origins for p in origin_patterns(o)]
    return [~exists().where(sessions_table.c.session_id == column, or_(*matches))]


def origin_patterns(origin: str) -> list[str]:
    """LIKE patterns of the URLs at ``origin``: with or without user info, the port written
    or (when it is the scheme's default) not, and anything after the authority."""
    scheme, _, authority = origin.partition("://")
    host, _, port = authority.rpartition(":")
    with_port = f"{_like(host)}:{port}"
    hosts = [with_port, _like(host)] if DEFAULT_PORTS.get(scheme) == int(port) else [with_port]
    prefixes = [f"{scheme}://{h}" for h in hosts] + [f"{scheme}://%@{h}" for h in hosts]
    return [p + tail for p in prefixes for tail in ("", "/%", "?%", "#%")]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def in_partitions(column: Any, partitions: Collection[int] | None) -> list[Any]:
    """The condition that keeps a session id column to these partitions (none: no limit)."""
    if partitions is None:
        return []
    return [func.right(cast(column, String), 2).in_(last_bytes(partitions))]


Due = tuple[UUID, UUID]
"""A due session and its company."""


def due_work(
    conn: Connection,
    stage: Stage,
    now: datetime,
    companies: Sequence[UUID],
    limit: int,
    partitions: Collection[int] | None = None,
) -> list[UUID]:
    """Sessions whose ``stage`` a worker should take now, in ``partitions`` when given (a
    daemon of a fleet), oldest first whatever their company (see `due_rows`)."""
    return [sid for sid, _ in due_rows(conn, stage, now, companies, limit, partitions)]


def due_rows(
    conn: Connection,
    stage: Stage,
    now: datetime,
    companies: Sequence[UUID],
    limit: int,
    partitions: Collection[int] | None = None,
    per_company: bool = False,
    held_origins: Sequence[str] = (),
) -> list[Due]:
    """Sessions (with their company) whose ``stage`` a worker should take now.

    Three index-friendly slices, in this order: IN_PROGRESS whose lease expired (a dead
    daemon's attempts are the oldest work there is, and a fleet's takeover is only as quick
    as they are picked up), FAILED whose retry time has come, then PENDING whose predecessor
    is done (for the stages after TRANSCRIPT_FETCH, the status projection's `stage_ready`
    rows), each oldest first.

    ``per_company``: each company's slices are read on their own (up to ``limit`` each, by
    the company-leading indexes) and the companies take turns in the answer, so one
    company's backlog cannot fill the whole batch while another's fresh work waits behind it.
    """
    if not companies or limit <= 0 or (partitions is not None and not partitions):
        return []
    if not per_company:
        return _slices(conn, stage, now, list(companies), limit, partitions, held_origins)
    per = [_slices(conn, stage, now, [c], limit, partitions, held_origins) for c in companies]
    return interleave(per, limit)


def interleave(lists: Sequence[Sequence[Due]], limit: int) -> list[Due]:
    """One from each list in turn (round robin), up to ``limit`` in all."""
    out: list[Due] = []
    depth = 0
    while len(out) < limit:
        took = False
        for items in lists:
            if depth < len(items):
                out.append(items[depth])
                took = True
                if len(out) >= limit:
                    break
        if not took:
            break
        depth += 1
    return out


def _slices(
    conn: Connection,
    stage: Stage,
    now: datetime,
    companies: list[UUID],
    limit: int,
    partitions: Collection[int] | None,
    held_origins: Sequence[str] = (),
) -> list[Due]:
    one = len(companies) == 1
    base = [
        sss.c.stage == stage.value,
        sss.c.company_id == companies[0] if one else sss.c.company_id.in_(companies),
        *in_partitions(sss.c.session_id, partitions),
        *not_from_origins(sss.c.session_id, held_origins),
    ]
    slices = [
        select(sss.c.session_id, sss.c.company_id)
        .where(*base, sss.c.status == Status.IN_PROGRESS.value, sss.c.lease_expires_at <= now)
        .order_by(sss.c.lease_expires_at),
        select(sss.c.session_id, sss.c.company_id)
        .where(*base, sss.c.status == Status.FAILED.value, sss.c.retry_at <= now)
        .order_by(sss.c.retry_at),
        _pending(stage, base, companies, partitions),
    ]
    found: list[Due] = []
    for query in slices:
        room = limit - len(found)
        if room <= 0:
            break
        found.extend((r[0], r[1]) for r in conn.execute(query.limit(room)).all())
    return found


def _pending(
    stage: Stage,
    base: list[Any],
    companies: list[UUID],
    partitions: Collection[int] | None,
) -> Select[tuple[UUID, UUID]]:
    """The PENDING slice: from `stage_ready` where the status projection keeps it, else the
    status rows whose predecessor is in a state that lets this stage start."""
    if stage in QUEUED:
        return (
            select(stage_ready.c.session_id, stage_ready.c.company_id)
            .where(
                stage_ready.c.stage == stage.value,
                stage_ready.c.company_id == companies[0]
                if len(companies) == 1
                else stage_ready.c.company_id.in_(companies),
                *in_partitions(stage_ready.c.session_id, partitions),
            )
            .order_by(stage_ready.c.since)
        )
    query = select(sss.c.session_id, sss.c.company_id).where(
        *base, sss.c.status == Status.PENDING.value
    )
    previous = stage.previous
    if previous is not None:
        prev = sss.alias()
        query = query.where(
            exists().where(
                prev.c.session_id == sss.c.session_id,
                prev.c.stage == previous.value,
                prev.c.status.in_([s.value for s in READY_WHEN_PREVIOUS[stage]]),
            )
        )
    return query.order_by(sss.c.updated_at)


def running_elsewhere(
    conn: Connection, stages: Sequence[Stage], now: datetime, companies: Sequence[UUID]
) -> int:
    """Stages some worker is running under a live lease."""
    if not companies:
        return 0
    return int(
        conn.execute(
            select(func.count()).where(
                sss.c.status == Status.IN_PROGRESS.value,
                sss.c.stage.in_([s.value for s in stages]),
                sss.c.company_id.in_(list(companies)),
                sss.c.lease_expires_at > now,
            )
        ).scalar()
        or 0
    )


def next_wakeup(
    conn: Connection, stages: Sequence[Stage], now: datetime, companies: Sequence[UUID]
) -> datetime | None:
    """The earliest scheduled retry (or lease expiry) still in the future."""
    if not companies:
        return None
    names = [s.value for s in stages]
    retry = conn.execute(
        select(func.min(sss.c.retry_at)).where(
            sss.c.status == Status.FAILED.value,
            sss.c.stage.in_(names),
            sss.c.company_id.in_(list(companies)),
            sss.c.retry_at > now,
        )
    ).scalar()
    lease = conn.execute(
        select(func.min(sss.c.lease_expires_at)).where(
            sss.c.status == Status.IN_PROGRESS.value,
            sss.c.stage.in_(names),
            sss.c.company_id.in_(list(companies)),
        )
    ).scalar()
    candidates = [t for t in (retry, lease) if t is not None]
    return min(candidates) if candidates else None


def company_statuses(conn: Connection) -> dict[UUID, str]:
    """Every registered company and its status (ACTIVE, SUSPENDED, ...)."""
    rows = conn.execute(select(companies_table.c.company_id, companies_table.c.status)).all()
    return {r[0]: r[1] for r in rows}


@dataclass(frozen=True)
class Standing:
    """Whether a daemon with nothing in hand may call itself idle."""

    due: bool
    running_elsewhere: int
    wake_at: datetime | None


class WorkQueries:
    """The daemon's questions, each on one short connection of the projection store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def company_statuses(self) -> dict[UUID, str]:
        with self.engine.connect() as conn:
            return company_statuses(conn)

    def due(
        self,
        stages: Sequence[Stage],
        now: datetime,
        companies: Sequence[UUID],
        limit: int,
        partitions: Collection[int] | None = None,
        per_company: bool = False,
        held_origins: Mapping[Stage, Sequence[str]] | None = None,
    ) -> dict[Stage, list[Due]]:
        """``held_origins``: per stage, transcript origins whose sessions are left out (their
        circuit breaker is open)."""
        if not companies:
            return {}
        held = held_origins or {}
        with self.engine.connect() as conn:
            return {
                s: due_rows(
                    conn, s, now, companies, limit, partitions, per_company, held.get(s, ())
                )
                for s in stages
            }

    def companies_of(self, session_ids: Sequence[UUID]) -> dict[UUID, UUID]:
        """The company of each of these sessions the status projection knows."""
        if not session_ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(sss.c.session_id, sss.c.company_id).where(
                    sss.c.session_id.in_(list(session_ids)),
                    sss.c.stage == Stage.TRANSCRIPT_FETCH.value,
                )
            ).all()
        return {r[0]: r[1] for r in rows}

    def standing(
        self, stages: Sequence[Stage], now: datetime, companies: Sequence[UUID]
    ) -> Standing:
        with self.engine.connect() as conn:
            if any(due_work(conn, s, now, companies, 1) for s in stages):
                return Standing(True, 0, None)
            running = running_elsewhere(conn, stages, now, companies)
            if running:
                return Standing(False, running, None)
            return Standing(False, 0, next_wakeup(conn, stages, now, companies))
