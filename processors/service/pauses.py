"""Pausing and resuming a stage (`livedash stage pause|resume`), and what `status` shows of
the pipeline's switches: the operators' pauses and the circuit breakers."""

from __future__ import annotations

from pydantic import BaseModel

from domain.errors import DomainError
from domain.pipeline import Pipeline, StagePause, pause_key
from domain.stages import WORKER_STAGES, Stage
from processors.service.backend import Backend
from processors.service.errors import ExitCode, ServiceError
from processors.service.lookup import require_company
from projections.models import BreakerInfo, CompanyInfo, PauseInfo


class PauseResult(BaseModel):
    stage: str
    company: str | None
    changed: bool
    """False: it was paused (or running) so already; nothing was recorded."""
    reason: str
    actor: str
    paused: list[PauseInfo]
    """Every pause in force after the change."""


def _check_stage(stage: Stage) -> None:
    if stage not in WORKER_STAGES:
        raise ServiceError(
            f"{stage.value} is not run by the daemon",
            hint=f"pause one of {', '.join(s.value for s in WORKER_STAGES)}",
            code=ExitCode.USAGE,
        )


def pause_stage(
    backend: Backend, stage: Stage, company: str | None, reason: str, actor: str
) -> PauseResult:
    _check_stage(stage)
    if not reason.strip():
        raise ServiceError("a pause needs a reason", hint='--reason "…"', code=ExitCode.USAGE)
    info = require_company(backend.engine, company) if company else None
    cid, name = (info.company_id, info.name) if info else (None, None)
    now = backend.clock()
    try:
        pipeline, changed = backend.app.change_pipeline(
            lambda p: p.pause(stage, cid, name, reason, actor, now), now
        )
    except DomainError as e:
        raise ServiceError(str(e)) from None
    held = pipeline.pauses.get(_key(stage, info))
    return PauseResult(
        stage=stage.value,
        company=name,
        changed=changed,
        reason=held.reason if held else reason,
        actor=held.actor if held else actor,
        paused=pauses_of(pipeline),
    )


def resume_stage(
    backend: Backend, stage: Stage, company: str | None, reason: str, actor: str
) -> PauseResult:
    _check_stage(stage)
    info = require_company(backend.engine, company) if company else None
    cid = info.company_id if info else None
    now = backend.clock()
    pipeline, changed = backend.app.change_pipeline(
        lambda p: p.resume(stage, cid, reason, actor, now), now
    )
    return PauseResult(
        stage=stage.value,
        company=info.name if info else None,
        changed=changed,
        reason=reason,
        actor=actor,
        paused=pauses_of(pipeline),
    )


def _key(stage: Stage, info: CompanyInfo | None) -> str:
    return pause_key(stage, info.company_id if info else None)


def pauses_of(pipeline: Pipeline) -> list[PauseInfo]:
    return [_pause_info(p) for p in sorted(pipeline.pauses.values(), key=_order)]


def _order(p: StagePause) -> tuple[int, str]:
    return (Stage(p.stage).index, p.company or "")


def _pause_info(p: StagePause) -> PauseInfo:
    return PauseInfo(
        stage=p.stage, company=p.company, reason=p.reason, actor=p.actor, since=p.since
    )


def breakers_of(pipeline: Pipeline) -> list[BreakerInfo]:
    found = []
    for key in sorted(pipeline.breakers):
        b = pipeline.breakers[key]
        stage, _, provider = key.partition("/")
        found.append(
            BreakerInfo(
                stage=stage,
                provider=provider,
                state=b.phase,
                reason=b.reason,
                since=b.since,
                cool_down_seconds=b.cool_down,
                reopens_at=b.reopens_at if b.phase == "open" else None,
                probe_by=b.probe_by if b.phase == "half_open" else None,
                changed_by=pipeline.breaker_by.get(key),
            )
        )
    return found


def switches(backend: Backend) -> tuple[list[PauseInfo], list[BreakerInfo]]:
    """What `status` shows: the pauses in force and the breakers' states."""
    pipeline = backend.app.pipeline(backend.clock())
    return pauses_of(pipeline), breakers_of(pipeline)
