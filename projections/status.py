"""The status projection: `session_stage_status`, `pipeline_overview` and `sessions`.

It applies the aggregate's own event handlers to the stored rows, so the status table is by
construction the fold of the events; only the batching and the SQL are its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.engine import Row

from domain.csv_rows import SourceRow
from domain.session import Session
from domain.stage_state import StageState, StageStates, new_states, on_imported
from domain.stages import STAGE_ORDER, Stage, Status
from projections.runner import Event
from projections.schema import pipeline_overview, session_stage_status, sessions
from projections.upsert import upsert

STATUS_EVENTS: tuple[type[Any], ...] = (
    Session.Imported,
    Session.SourceRowChanged,
    Session.StageStarted,
    Session.StageCompleted,
    Session.StageFailed,
    Session.StageSkipped,
    Session.StageReset,
)
CHUNK = 500


@dataclass
class _Tracked:
    """A session's stage states while a page is applied (what ``event.apply`` mutates)."""

    company_id: UUID
    external_id: str
    stages: StageStates
    before: dict[Stage, Status | None]
    touched: set[Stage] = field(default_factory=set)

    def __setattr__(self, name: str, value: Any) -> None:
        # Event handlers also set data attributes (row, transcript...): not ours to keep.
        if name in self.__dataclass_fields__:
            object.__setattr__(self, name, value)


def state_from_row(row: Row[Any]) -> StageState:
    return StageState(
        status=Status(row.status),
        attempt=row.attempt,
        retry_count=row.retry_count,
        worker=row.worker,
        started_at=row.started_at,
        completed_at=row.completed_at,
        lease_expires_at=row.lease_expires_at,
        retry_at=row.retry_at,
        error_type=row.error_type,
        error_message=row.error_message,
        retryable=row.retryable,
        note=row.note,
        metadata=dict(row.metadata or {}),
        updated_at=row.updated_at,
    )


def row_from_state(session_id: UUID, tracked: _Tracked, stage: Stage) -> dict[str, Any]:
    s = tracked.stages[stage]
    return {
        "session_id": session_id,
        "stage": stage.value,
        "company_id": tracked.company_id,
        "external_id": tracked.external_id,
        "status": s.status.value,
        "attempt": s.attempt,
        "retry_count": s.retry_count,
        "worker": s.worker,
        "started_at": s.started_at,
        "completed_at": s.completed_at,
        "lease_expires_at": s.lease_expires_at,
        "retry_at": s.retry_at,
        "error_type": s.error_type,
        "error_message": s.error_message,
        "retryable": s.retryable,
        "note": s.note,
        "metadata": s.metadata,
        "updated_at": s.updated_at,
    }


def _chunks(items: Sequence[UUID]) -> Iterable[Sequence[UUID]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


class StatusProjection:
    name = "session_status"
    topics = tuple(cls.TOPIC for cls in STATUS_EVENTS)

    def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        tracked = self._load(conn, {e.originator_id for e in events})
        new_sessions: list[dict[str, Any]] = []
        changed_rows: dict[UUID, dict[str, Any]] = {}
        for event in events:
            sid = event.originator_id
            if isinstance(event, Session.Imported):
                states = new_states()
                on_imported(states, event.timestamp)
                before: dict[Stage, Status | None] = {s: None for s in STAGE_ORDER}
                previous = tracked.get(sid)
                if previous is not None:  # re-created after a rebuild gap: keep counts right
                    before = previous.before
                tracked[sid] = _Tracked(
                    event.company_id, event.external_id, states, before, set(STAGE_ORDER)
                )
                new_sessions.append(_session_row(sid, event.company_id, event.row, event.timestamp))
                continue
            t = tracked.get(sid)
            if t is None:
                raise LookupError(f"event {type(event).__name__} for unknown session {sid}")
            event.apply(t)  # type: ignore[attr-defined]
            t.touched.update(_stages_touched(event))
            if isinstance(event, Session.SourceRowChanged):
                changed_rows[sid] = _session_row(sid, t.company_id, event.row, event.timestamp)
        self._write(conn, tracked, new_sessions, changed_rows)

    def _load(self, conn: Connection, ids: set[UUID]) -> dict[UUID, _Tracked]:
        tracked: dict[UUID, _Tracked] = {}
        for chunk in _chunks(sorted(ids)):
            rows = conn.execute(
                select(session_stage_status).where(session_stage_status.c.session_id.in_(chunk))
            ).all()
            for row in rows:
                t = tracked.get(row.session_id)
                if t is None:
                    t = _Tracked(row.company_id, row.external_id, new_states(), {})
                    tracked[row.session_id] = t
                stage = Stage(row.stage)
                t.stages[stage] = state_from_row(row)
                t.before[stage] = Status(row.status)
        return tracked

    def _write(
        self,
        conn: Connection,
        tracked: dict[UUID, _Tracked],
        new_sessions: list[dict[str, Any]],
        changed_rows: dict[UUID, dict[str, Any]],
    ) -> None:
        rows = []
        deltas: Counter[tuple[UUID, str, str]] = Counter()
        for sid, t in tracked.items():
            for stage in t.touched:
                rows.append(row_from_state(sid, t, stage))
                old = t.before.get(stage)
                new = t.stages[stage].status
                if old is not new:
                    if old is not None:
                        deltas[(t.company_id, stage.value, old.value)] -= 1
                    deltas[(t.company_id, stage.value, new.value)] += 1
        upsert(conn, session_stage_status, rows, ("session_id", "stage"))
        upsert(
            conn,
            pipeline_overview,
            [
                {"company_id": c, "stage": s, "status": st, "count": n}
                for (c, s, st), n in sorted(deltas.items(), key=lambda kv: str(kv[0]))
                if n
            ],
            ("company_id", "stage", "status"),
            add=("count",),
        )
        if any(n < 0 for n in deltas.values()):
            conn.execute(delete(pipeline_overview).where(pipeline_overview.c.count == 0))
        upsert(conn, sessions, new_sessions, ("session_id",))
        for sid, values in changed_rows.items():
            keep = ("session_id", "company_id", "external_id", "imported_at")
            values = {k: v for k, v in values.items() if k not in keep}
            conn.execute(update(sessions).where(sessions.c.session_id == sid).values(**values))

    def clear(self, conn: Connection) -> None:
        conn.execute(delete(session_stage_status))
        conn.execute(delete(pipeline_overview))
        conn.execute(delete(sessions))


def _stages_touched(event: Event) -> Iterable[Stage]:
    if isinstance(event, Session.SourceRowChanged):
        return STAGE_ORDER
    stage: Stage = event.stage  # type: ignore[attr-defined]
    if isinstance(event, Session.StageReset):
        return stage.and_later()
    return (stage,)


def _session_row(sid: UUID, company_id: UUID, row: SourceRow, at: datetime) -> dict[str, Any]:
    return {
        "session_id": sid,
        "company_id": company_id,
        "external_id": row.external_id,
        "row_fingerprint": row.fingerprint(),
        "start_time": row.start_time,
        "end_time": row.end_time,
        "transcript_url": row.transcript_url,
        "imported_at": at,
        "updated_at": at,
    }
