"""A session's audit trail: every event in order, or its stages as they were at a moment."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from domain.history import HistoryEntry, describe
from domain.session import Session
from processors.service.backend import Backend
from processors.service.errors import ServiceError
from processors.service.lookup import SessionRef, find_session


class StageAt(BaseModel):
    status: str
    attempt: int
    retry_count: int
    updated_at: datetime | None
    error_type: str | None
    error_message: str | None
    retry_at: datetime | None
    note: str | None


class Erasure(BaseModel):
    erased_at: datetime
    erased_by: str
    reason: str

    def line(self) -> str:
        return f"personal data erased on {self.erased_at:%Y-%m-%d %H:%M} UTC by {self.erased_by}"


class SessionHistory(BaseModel):
    session: SessionRef
    events: list[HistoryEntry]
    erased: Erasure | None = None
    """Set once the session's personal data was erased: its content reads redacted."""


class SessionAt(BaseModel):
    session: SessionRef
    at: datetime
    stages: dict[str, StageAt]
    """Stage name -> its state at ``at``, in pipeline order."""


def session_history(backend: Backend, key: str, company: str | None = None) -> SessionHistory:
    ref, events = _events(backend, key, company)
    return SessionHistory(session=ref, events=describe(events), erased=erasure_of(events))


def erasure_of(events: list[Any]) -> Erasure | None:
    for e in events:
        if isinstance(e, Session.PersonalDataErased):
            return Erasure(erased_at=e.timestamp, erased_by=e.actor, reason=e.reason)
    return None


def session_at(backend: Backend, key: str, at: datetime, company: str | None = None) -> SessionAt:
    """Folds the events up to ``at``; before the session existed there is nothing to show."""
    ref, events = _events(backend, key, company)
    session = None
    for event in events:
        if event.timestamp > at:
            break
        session = event.mutate(session)
    if session is None:
        raise ServiceError(f"the session did not exist yet at {at.isoformat()}")
    stages = {
        stage.value: StageAt(
            status=s.status.value,
            attempt=s.attempt,
            retry_count=s.retry_count,
            updated_at=s.updated_at,
            error_type=s.error_type,
            error_message=s.error_message,
            retry_at=s.retry_at,
            note=s.note,
        )
        for stage, s in session.stages.items()
    }
    return SessionAt(session=ref, at=at, stages=stages)


def _events(backend: Backend, key: str, company: str | None) -> tuple[SessionRef, list[Any]]:
    backend.catch_up()
    ref = find_session(backend.engine, key, company)
    sid: UUID = ref.session_id
    return ref, backend.app.session_events(sid)
