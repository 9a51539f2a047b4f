"""Which stages wait only for a worker, as the status projection keeps them in `stage_ready`.

Finding due work used to scan every PENDING row of a stage and look up its predecessor: on a
backlog the daemon starts each next stage in the same commit, so almost none of those rows
were due and the query read all of them (37 ms at 20,000 sessions, linear in the backlog).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, insert, select

from domain.stage_state import StageStates
from domain.stages import READY_WHEN_PREVIOUS, WORKER_STAGES, Stage, Status, is_ready
from projections.schema import session_stage_status as sss
from projections.schema import stage_ready

QUEUED: tuple[Stage, ...] = tuple(s for s in WORKER_STAGES if s.previous in WORKER_STAGES)
"""Stages whose readiness depends on another worker stage (TRANSCRIPT_FETCH's predecessor,
CSV_IMPORT, is done for every imported session: its PENDING rows are all due anyway)."""


def ready_since(stages: StageStates, stage: Stage) -> datetime | None:
    """The `stage_ready` row's time for ``stage`` (the stage row's `updated_at`, the order
    due work is taken in), or None when it is not waiting only for a worker."""
    previous = stage.previous
    state = stages[stage]
    if previous is None or state.status is not Status.PENDING:
        return None
    return state.updated_at if is_ready(stage, stages[previous].status) else None


def backfill_ready(conn: Connection) -> None:
    """Fills `stage_ready` from the status table: for a database whose status projection
    was built before the table existed."""
    for stage in QUEUED:
        previous = stage.previous
        assert previous is not None
        prev = sss.alias()
        rows = (
            select(sss.c.session_id, sss.c.stage, sss.c.company_id, sss.c.updated_at)
            .join(prev, and_(prev.c.session_id == sss.c.session_id, prev.c.stage == previous.value))
            .where(
                sss.c.stage == stage.value,
                sss.c.status == Status.PENDING.value,
                prev.c.status.in_([s.value for s in READY_WHEN_PREVIOUS[stage]]),
            )
        )
        conn.execute(
            insert(stage_ready).from_select(["session_id", "stage", "company_id", "since"], rows)
        )
