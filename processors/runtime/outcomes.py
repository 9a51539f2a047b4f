"""What an attempt's outcome does to its session: completed, handed back, or failed with a
retry time from the stage's policy."""

from __future__ import annotations

from datetime import datetime

from domain.session import LEASE_EXPIRED, Session
from domain.stages import Status
from processors.runtime.config import StageConfig
from processors.runtime.flight import Outcome
from processors.runtime.reporting import Reporter
from processors.runtime.summary import DaemonSummary, count
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


def report_outcome(outcome: Outcome, summary: DaemonSummary, reporter: Reporter) -> None:
    """Counts and reports an outcome once it is stored."""
    flight = outcome.flight
    state = flight.session.stages[flight.stage]
    if state.status is Status.COMPLETED:
        count(summary.completed, flight.stage)
        reporter.event("completed", flight.session, flight.stage, flight.attempt)
    elif state.status is Status.PENDING:
        count(summary.released, flight.stage)
        reporter.event("released", flight.session, flight.stage, flight.attempt, state.note or "")
    else:
        count(summary.failed, flight.stage)
        detail = f"{state.error_type}: {state.error_message}"
        if state.retry_at:
            detail += f" (retry at {state.retry_at:%H:%M:%S})"
        reporter.event("failed", flight.session, flight.stage, flight.attempt, detail)
