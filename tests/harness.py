"""Opening the real application and projection store on a test database (no CLI in between)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import exists, select
from sqlalchemy.orm import aliased

from cli.runtime import Runtime
from domain.session import Session
from domain.stages import READY_WHEN_PREVIOUS, STAGE_ORDER, Status
from projections.bulk import STAGE_ROWS
from projections.ready import QUEUED, ready_since
from projections.schema import (
    RETRY_SCHEDULED,
    pipeline_overview,
    session_stage_status,
    stage_ready,
)
from projections.status import row_from_state
from tests.factories import row


@contextmanager
def runtime(url: str, create: bool = True) -> Iterator[Runtime]:
    rt = Runtime.open(url, create=create)
    try:
        yield rt
    finally:
        rt.close()


def imported(
    rt: Runtime, company_id: UUID, n: int, prefix: str, clock: Callable[[], datetime]
) -> list[Session]:
    """n freshly imported sessions, stored and projected."""
    sessions = [
        Session.import_row(company_id, row(external_id=f"{prefix}{i}"), "t.csv", clock())
        for i in range(n)
    ]
    rt.app.save_batch(sessions)
    rt.runner.catch_up()
    return sessions


def assert_projected_is_fold(rt: Runtime, company_id: UUID, sessions: list[Session]) -> None:
    """The status projection's three tables hold exactly the fold of these sessions."""
    ids = [s.id for s in sessions]
    assert projected_rows(rt, ids) == folded_rows(sessions)
    assert projected_ready(rt, ids) == folded_ready(sessions)
    assert overview_counts(rt, company_id) == folded_overview(sessions)


def projected_rows(rt: Runtime, ids: list[UUID]) -> dict[tuple[UUID, str], tuple[Any, ...]]:
    rows = {}
    with rt.engine.connect() as conn:
        for i in range(0, len(ids), 500):
            for r in conn.execute(
                select(session_stage_status).where(
                    session_stage_status.c.session_id.in_(ids[i : i + 500])
                )
            ).all():
                # Read through Core, independently of the projection's driver-level writer.
                rows[(r.session_id, r.stage)] = tuple(getattr(r, c) for c in STAGE_ROWS.columns)
    return rows


def folded_rows(sessions: list[Session]) -> dict[tuple[UUID, str], tuple[Any, ...]]:
    """What the status table must hold: the aggregate's own fold of its events."""

    class _T:
        def __init__(self, s: Session) -> None:
            self.company_id = s.company_id
            self.external_id = s.external_id
            self.stages = s.stages

    rows = {}
    for s in sessions:
        for stage in STAGE_ORDER:
            rows[(s.id, stage.value)] = row_from_state(s.id, _T(s), stage)  # type: ignore[arg-type]
    return rows


def overview_counts(rt: Runtime, company_id: UUID) -> Counter[tuple[str, str]]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(
                pipeline_overview.c.stage, pipeline_overview.c.status, pipeline_overview.c.count
            ).where(pipeline_overview.c.company_id == company_id)
        ).all()
    return Counter({(stage, status): n for stage, status, n in rows if n})


def folded_overview(sessions: list[Session]) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for s in sessions:
        for stage in STAGE_ORDER:
            state = s.stages[stage]
            counts[(stage.value, state.status.value)] += 1
            if state.status is Status.FAILED and state.retry_at is not None:
                counts[(stage.value, RETRY_SCHEDULED)] += 1
    return counts


def projected_ready(rt: Runtime, ids: list[UUID]) -> dict[tuple[UUID, str], tuple[Any, ...]]:
    """The `stage_ready` rows of these sessions: (session, stage) -> (company, since)."""
    wanted = set(ids)
    with rt.engine.connect() as conn:
        rows = conn.execute(select(stage_ready)).all()
    return {
        (r.session_id, r.stage): (r.company_id, r.since) for r in rows if r.session_id in wanted
    }


def folded_ready(sessions: list[Session]) -> dict[tuple[UUID, str], tuple[Any, ...]]:
    """What `stage_ready` must hold: queued stages PENDING behind a done predecessor."""
    out = {}
    for s in sessions:
        for stage in QUEUED:
            since = ready_since(s.stages, stage)
            if since is not None:
                out[(s.id, stage.value)] = (s.company_id, since)
    return out


def ready_by_scan(rt: Runtime) -> set[tuple[UUID, str]]:
    """The same set found the slow way, independently of `ready_since`: every PENDING row
    of a queued stage whose predecessor's row is in a status that lets it run."""
    found: set[tuple[UUID, str]] = set()
    with rt.engine.connect() as conn:
        for stage in QUEUED:
            previous = stage.previous
            assert previous is not None
            prev = aliased(session_stage_status)
            rows = conn.execute(
                select(session_stage_status.c.session_id).where(
                    session_stage_status.c.stage == stage.value,
                    session_stage_status.c.status == Status.PENDING.value,
                    exists().where(
                        prev.c.session_id == session_stage_status.c.session_id,
                        prev.c.stage == previous.value,
                        prev.c.status.in_([s.value for s in READY_WHEN_PREVIOUS[stage]]),
                    ),
                )
            ).all()
            found.update((r[0], stage.value) for r in rows)
    return found
