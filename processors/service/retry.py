"""Sending failed (or skipped) stages back to PENDING; the history keeps every earlier attempt."""

from __future__ import annotations

from pydantic import BaseModel

from domain.errors import DomainError
from domain.session import Session
from domain.stages import STAGE_ORDER, Stage, Status
from processors.service.backend import Backend
from processors.service.errors import ServiceError
from processors.service.lookup import find_session, optional_company
from projections.queries import failed_session_ids

SAVE_BATCH = 500


class RetryRequest(BaseModel):
    """Either named ``sessions`` (each retries ``stage``, or its first FAILED/SKIPPED stage), or
    ``all_failed`` with a ``stage``: every FAILED session of that stage (with ``error_type``,
    only those that failed with it: one failure group of the web page)."""

    sessions: list[str] = []
    stage: Stage | None = None
    all_failed: bool = False
    company: str | None = None
    error_type: str | None = None
    reason: str = "manual retry"

    def check(self) -> None:
        """Refuses a request that names nothing to retry, before any database is opened."""
        if self.all_failed and self.stage is None:
            raise ServiceError(
                "--all-failed needs --stage", hint="e.g. --stage TRANSCRIPT_FETCH --all-failed"
            )
        if not self.sessions and not self.all_failed:
            raise ServiceError("name sessions to retry, or use --stage S --all-failed")


class RetriedSession(BaseModel):
    session_id: str
    external_id: str


class Refusal(BaseModel):
    session_id: str
    external_id: str
    reason: str


class RetryResult(BaseModel):
    reset: list[RetriedSession]
    refused: list[Refusal]
    actor: str
    reason: str


def retry(backend: Backend, request: RetryRequest, actor: str) -> RetryResult:
    request.check()
    backend.catch_up()
    if request.all_failed:
        assert request.stage is not None
        info = optional_company(backend.engine, request.company)
        with backend.engine.connect() as conn:
            ids = failed_session_ids(
                conn, request.stage, info.company_id if info else None, request.error_type
            )
    else:
        ids = [
            find_session(backend.engine, key, request.company).session_id
            for key in request.sessions
        ]
    now = backend.clock()
    reset: list[Session] = []
    refused: list[Refusal] = []
    for session in backend.app.get_sessions(ids):
        target = request.stage or first_resettable(session)
        try:
            if target is None:
                raise DomainError("no FAILED or SKIPPED stage to retry")
            session.reset_stage(target, request.reason, actor, now)
            reset.append(session)
        except DomainError as e:
            refused.append(
                Refusal(session_id=str(session.id), external_id=session.external_id, reason=str(e))
            )
    for i in range(0, len(reset), SAVE_BATCH):
        backend.app.save_batch(reset[i : i + SAVE_BATCH])
    backend.catch_up()
    return RetryResult(
        reset=[RetriedSession(session_id=str(s.id), external_id=s.external_id) for s in reset],
        refused=refused,
        actor=actor,
        reason=request.reason,
    )


def first_resettable(session: Session) -> Stage | None:
    for stage in STAGE_ORDER[1:]:
        if session.stages[stage].status in (Status.FAILED, Status.SKIPPED):
            return stage
    return None
