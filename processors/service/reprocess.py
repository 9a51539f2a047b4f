"""Forcing completed stages back to PENDING so a new model or prompt version runs them again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from domain.errors import DomainError
from domain.session import Session
from domain.stages import Stage, Status
from processors.ai.estimate import AICostEstimate, EstimateSettings
from processors.service.backend import Backend
from processors.service.errors import ExitCode, ServiceError
from processors.service.estimate import causes_analysis, estimate_sessions
from processors.service.lookup import optional_company
from projections.queries import list_companies, list_sessions

SAVE_BATCH = 500


class ReprocessResult(BaseModel):
    stage: str
    reset: int
    model: str | None
    reason: str
    dry_run: bool = False
    would_reset: int = 0
    """Sessions the command resets (or, with ``dry_run``, would reset)."""
    ai_cost_estimate: AICostEstimate | None = None
    """What the AI analyses this causes will cost; None when no estimate was asked for."""
    batches: list[dict[str, Any]] = []
    """With ``submit`` (``--batch``): the Batch API jobs the reset sessions went out in."""


Approve = Callable[[int, AICostEstimate | None], None]
Submit = Callable[[list[UUID]], list[dict[str, Any]]]
"""Sends the reset sessions' AI work as batches at once (``reprocess --batch``)."""
"""Called with the count and the estimate before anything is written; raises to refuse."""


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
    estimate_with: EstimateSettings | None = None,
    dry_run: bool = False,
    approve: Approve | None = None,
    submit: Submit | None = None,
) -> ReprocessResult:
    """Resets ``stage`` of up to ``limit`` COMPLETED sessions (of ``company``, or all); with
    ``model``, that company's (or every company's) AI model changes first. With
    ``estimate_with``, the AI cost of the resets is priced before anything is written;
    ``dry_run`` stops there. With ``submit`` (AI_ANALYSIS only), the reset sessions are
    claimed and sent as Batch API jobs at once, so no standard-mode daemon takes them first."""
    check_stage(stage)
    backend.catch_up()
    info = optional_company(backend.engine, company)
    now = backend.clock()
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
    priced = None
    if estimate_with is not None:
        analysed = reset if causes_analysis(stage) else []
        priced = estimate_sessions(backend, analysed, estimate_with, model)
    result = ReprocessResult(
        stage=stage.value,
        reset=0,
        model=model,
        reason=reason,
        dry_run=dry_run,
        would_reset=len(reset),
        ai_cost_estimate=priced,
    )
    if dry_run:
        return result
    if approve is not None:
        approve(len(reset), priced)
    if model:
        _change_models(backend, info.name if info else None, model, actor, reason)
    for start in range(0, len(reset), SAVE_BATCH):
        backend.app.save_batch(reset[start : start + SAVE_BATCH])
    backend.catch_up()
    batches = submit([s.id for s in reset]) if submit is not None and reset else []
    if batches:
        backend.catch_up()
    return result.model_copy(update={"reset": len(reset), "batches": batches})


def _change_models(
    backend: Backend, company: str | None, model: str, actor: str, reason: str
) -> None:
    if company:
        names = [company]
    else:
        with backend.engine.connect() as conn:
            names = [c.name for c in list_companies(conn)]
    now = backend.clock()
    for name in names:
        c = backend.app.get_company(name)
        c.change_settings(now, ai_model=model, actor=actor, reason=reason)
        backend.app.save(c)
