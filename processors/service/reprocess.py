"""Forcing completed stages back to PENDING so a new model or prompt version runs them again."""

from __future__ import annotations

from pydantic import BaseModel

from domain.errors import DomainError
from domain.session import Session
from domain.stages import Stage, Status
from processors.service.backend import Backend
from processors.service.errors import ExitCode, ServiceError
from processors.service.lookup import optional_company
from projections.queries import list_companies, list_sessions

SAVE_BATCH = 500


class ReprocessResult(BaseModel):
    stage: str
    reset: int
    model: str | None
    reason: str


def check_stage(stage: Stage) -> None:
    """The import stage has no redo here: importing the file again is how."""
    if stage is Stage.CSV_IMPORT:
        raise ServiceError("CSV_IMPORT is redone by importing the file again", code=ExitCode.USAGE)


def reprocess(
    backend: Backend,
    stage: Stage,
    actor: str,
    *,
    company: str | None = None,
    model: str | None = None,
    reason: str = "reprocess",
    limit: int = 1_000_000,
) -> ReprocessResult:
    """Resets ``stage`` of up to ``limit`` COMPLETED sessions (of ``company``, or all); with
    ``model``, that company's (or every company's) AI model changes first."""
    check_stage(stage)
    backend.catch_up()
    info = optional_company(backend.engine, company)
    now = backend.clock()
    if model:
        if info:
            names = [info.name]
        else:
            with backend.engine.connect() as conn:
                names = [c.name for c in list_companies(conn)]
        for name in names:
            c = backend.app.get_company(name)
            c.change_settings(now, ai_model=model, actor=actor, reason=reason)
            backend.app.save(c)
    with backend.engine.connect() as conn:
        rows = list_sessions(
            conn, stage, Status.COMPLETED, info.company_id if info else None, limit
        )
    reset: list[Session] = []
    for session in backend.app.get_sessions([r.session_id for r in rows]):
        try:
            session.reset_stage(stage, reason, actor, now, force=True)
        except DomainError:
            continue
        reset.append(session)
        if len(reset) % SAVE_BATCH == 0:
            backend.app.save_batch(reset[-SAVE_BATCH:])
    backend.app.save_batch(reset[len(reset) - len(reset) % SAVE_BATCH :])
    backend.catch_up()
    return ReprocessResult(stage=stage.value, reset=len(reset), model=model, reason=reason)
