"""What an attempt's outcome does to its session: completed, handed back, or failed with a
retry time from the stage's policy."""

from __future__ import annotations

from datetime import datetime

from domain.session import LEASE_EXPIRED, Session
from processors.runtime.config import StageConfig
from processors.runtime.flight import Outcome
from processors.stages.base import StageError, StageProcessor, WorkReleased


def apply_outcome(
    session: Session,
    outcome: Outcome,
    processor: StageProcessor,
    config: StageConfig,
    now: datetime,
) -> None:
    """Raises DomainError when the attempt is no longer the session's (taken over, reset)."""
    flight = outcome.flight
    if outcome.error is None:
        processor.record(session, flight.attempt, outcome.output, now)
        return
    error = outcome.error
    if isinstance(error, WorkReleased):
        session.release_stage(flight.stage, flight.attempt, str(error), now)
        return
    if not isinstance(error, StageError):
        error = StageError("internal_error", f"{type(error).__name__}: {error}", retryable=True)
    failures = session.stages[flight.stage].retry_count + 1
    retry_at = config.policy.retry_at(failures, now, error.retry_after) if error.retryable else None
    message = error.message
    if error.retryable and retry_at is None:
        message += f" (retries exhausted: {failures} failed attempts)"
    if retry_at is not None and error.error_type == LEASE_EXPIRED:
        retry_at = now  # the worker died, not the target: nothing to back off from
    session.fail_stage(
        flight.stage,
        flight.attempt,
        error.error_type,
        message,
        error.retryable,
        retry_at,
        now,
    )
