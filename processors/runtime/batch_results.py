"""A finished batch's lines become each session's normal events.

Per request of the batch: a 2xx line is a paid answer, recorded (`AIUsageRecorded`, at the batch
price) before it is judged; a valid analysis then completes the stage like the OpenAI
analyser's would (`AnalysisRecorded` + `StageCompleted`, metadata says ``ai_mode: batch``); an
invalid one, a failed line and a line the batch never answered (expired, failed, cancelled)
fail the attempt as retryable, so normal retries take them, until the retry policy gives up.
Applying the same results twice changes nothing: usage is idempotent per request id, and an
attempt that is no longer current is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from domain.ai_batch import AIBatch, BatchRequest
from domain.errors import DomainError
from domain.session import Session
from domain.stages import Stage, Status
from processors.ai.batch_requests import Result, refusal, usage
from processors.ai.config import OpenAIAnalyserConfig, transcript_budget
from processors.ai.openai_client import validate
from processors.ai.prompt import JSON_SCHEMA, fit_transcript
from processors.runtime.retry import RetryPolicy

AI = Stage.AI_ANALYSIS


@dataclass
class Tally:
    succeeded: int = 0
    failed: int = 0
    missing: int = 0
    stale: int = 0
    cost_eur: Decimal | None = field(default_factory=lambda: Decimal(0))

    def merge(self, other: Tally) -> None:
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.missing += other.missing
        self.stale += other.stale
        self.add_cost(other.cost_eur)

    def add_cost(self, amount: Decimal | None) -> None:
        if self.cost_eur is not None:
            self.cost_eur = None if amount is None else self.cost_eur + amount


def apply_result(
    session: Session,
    request: BatchRequest,
    result: Result | None,
    batch: AIBatch,
    cfg: OpenAIAnalyserConfig,
    policy: RetryPolicy,
    now: datetime,
    tally: Tally,
) -> None:
    attempt = request.attempt
    state = session.stages[AI]
    current = state.status is Status.IN_PROGRESS and state.attempt == attempt
    if result is not None and result.ok:
        paid = usage(cfg, batch.model, result, batch.created_on, now)
        try:
            if session.record_ai_usage(AI, attempt, paid):
                tally.add_cost(paid.cost_eur)
        except DomainError:
            pass  # an attempt the session never had: not ours to record
        if not current:
            tally.stale += 1
            return
        body = result.body or {}
        refused = refusal(body)
        if refused:
            session.fail_stage(
                AI, attempt, "refused", f"the model refused: {refused[:300]}", False, None, now
            )
            tally.failed += 1
            return
        analysis, error = validate(paid.response_text or "")
        if analysis is None:
            _fail(
                session,
                attempt,
                "invalid_batch_output",
                f"the batch answer failed validation: {error}",
                policy,
                now,
            )
            tally.failed += 1
            return
        transcript = fit_transcript(list(session.messages), transcript_budget(cfg))
        model = paid.model_returned or paid.model_requested
        session.record_analysis(
            attempt,
            analysis,
            "openai",
            model,
            cfg.prompt_version,
            now,
            {
                "provider": "openai",
                "model": model,
                "prompt_version": cfg.prompt_version,
                "language": analysis.language,
                "sentiment": analysis.sentiment.value,
                "category": analysis.category.value,
                "questions": len(analysis.questions),
                "model_requested": batch.model,
                "prompt_tokens": paid.prompt_tokens,
                "completion_tokens": paid.completion_tokens,
                "cost_eur": None if paid.cost_eur is None else str(paid.cost_eur),
                "paid_calls": 1,
                "truncated": transcript.truncated,
                "omitted_messages": transcript.omitted,
                "clipped_messages": transcript.clipped,
                "response_format": JSON_SCHEMA,
                "reused_recorded_response": False,
                "repaired": False,
                "request_id": paid.request_id,
                "ai_mode": "batch",
                "batch_id": batch.provider_batch_id,
                "price_source": paid.price_source,
            },
        )
        tally.succeeded += 1
        return
    if not current:
        tally.stale += 1
        return
    if result is not None:
        _fail(
            session,
            attempt,
            "batch_request_failed",
            f"batch {batch.provider_batch_id}: {result.error or 'failed'}",
            policy,
            now,
        )
        tally.failed += 1
    else:
        _fail(
            session,
            attempt,
            f"batch_{batch.status}",
            f"batch {batch.provider_batch_id} ended {batch.status} without answering it",
            policy,
            now,
        )
        tally.missing += 1


def _fail(
    session: Session,
    attempt: int,
    error_type: str,
    message: str,
    policy: RetryPolicy,
    now: datetime,
) -> None:
    """Retryable at once (a batch's failure says nothing about the next try's timing), until
    the policy's attempts are used up."""
    failures = session.stages[AI].retry_count + 1
    retryable = failures < policy.max_attempts
    if not retryable:
        message += f" (retries exhausted: {failures} failed attempts)"
    session.fail_stage(
        AI, attempt, error_type, message[:2000], True, now if retryable else None, now
    )
