"""The AI cost of work a command is about to cause, priced before any money is spent."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from domain.session import Session
from domain.stages import STAGE_ORDER, Stage
from processors.ai.estimate import (
    AICostEstimate,
    EstimateSettings,
    History,
    estimate,
    transcript_prompt_tokens,
)
from processors.service.backend import Backend
from projections.analytics_queries import analysis_response_means

ENOUGH_OF_ITS_OWN = 20
"""Responses of one company needed before its own means are used instead of everybody's."""


def causes_analysis(stage: Stage) -> bool:
    """Resetting ``stage`` runs AI_ANALYSIS again (a reset reopens every later stage)."""
    return STAGE_ORDER.index(stage) <= STAGE_ORDER.index(Stage.AI_ANALYSIS)


def history(backend: Backend, company_id: UUID | None) -> History:
    with backend.engine.connect() as conn:
        if company_id is not None:
            n, prompt, completion = analysis_response_means(conn, company_id)
            if n >= ENOUGH_OF_ITS_OWN:
                return History(n, prompt, completion)
        n, prompt, completion = analysis_response_means(conn, None)
    return History(n, prompt, completion)


def estimate_sessions(
    backend: Backend,
    sessions: Sequence[Session],
    settings: EstimateSettings,
    model: str | None = None,
) -> AICostEstimate:
    """One analysis per session, each priced from its own transcript (``history`` for those
    without one yet); ``model`` overrides every company's model (``reprocess --model``)."""
    models: dict[UUID, str | None] = {}
    for company_id in {s.company_id for s in sessions}:
        models[company_id] = model or backend.app.get_company(company_id).ai_model
    only = next(iter(models)) if len(models) == 1 else None
    work = [
        (
            models[s.company_id],
            transcript_prompt_tokens(s.messages, settings) if s.messages else None,
        )
        for s in sessions
    ]
    return estimate(work, settings, history(backend, only), backend.clock().date())


def estimate_new_sessions(
    backend: Backend, company_id: UUID, count: int, settings: EstimateSettings
) -> AICostEstimate:
    """``count`` sessions of a company whose transcripts are not fetched yet (after import)."""
    model = backend.app.get_company(company_id).ai_model
    work = [(model, None)] * count
    return estimate(work, settings, history(backend, company_id), backend.clock().date())
