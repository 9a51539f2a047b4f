"""Opening the real application and projection store on a test database (no CLI in between)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from sqlalchemy import select

from cli.runtime import Runtime
from domain.session import Session
from domain.stages import STAGE_ORDER, Status
from projections.bulk import STAGE_ROWS
from projections.schema import RETRY_SCHEDULED, pipeline_overview, session_stage_status
from projections.status import row_from_state


@contextmanager
def runtime(url: str, create: bool = True) -> Iterator[Runtime]:
    rt = Runtime.open(url, create=create)
    try:
        yield rt
    finally:
        rt.close()


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
