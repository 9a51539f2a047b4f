"""The small interface every stage processor implements.

A processor does the work of one stage for one session: it reads what it needs from the
aggregate (``prepare``, on the daemon's thread), does the I/O (``run``, on a worker thread)
and records the outcome through the aggregate's commands (``record``). It never writes SQL
and never reads settings: what it needs is given to its constructor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from domain.company import Company
from domain.payloads import AIRequestIntent, AIUsage
from domain.session import Session
from domain.stages import Stage


class StageError(Exception):
    """A classified failure: the daemon records it and decides about a retry from ``retryable``."""

    def __init__(
        self,
        error_type: str,
        message: str,
        retryable: bool,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.details = details or {}


class WorkReleased(Exception):
    """The work did not start (the daemon is stopping, the database is away, no rate-limit
    slot came): the claim is handed back (`StageReleased`) and no attempt is used."""


def _send_freely(_intent: AIRequestIntent) -> None:
    return None


@dataclass
class WorkContext:
    """What a running stage may tell the daemon before it returns."""

    record_usage: Callable[[AIUsage], None]
    """Hands a paid model response to the daemon, which stores it as `AIUsageRecorded` before
    it returns (before the output is validated, so nothing paid goes unrecorded)."""
    before_request: Callable[[AIRequestIntent], None] = _send_freely
    """Called before a paid request is sent: returns once its intent is stored, or raises
    `WorkReleased` when the request must not be sent (stopping, database away)."""


class StageProcessor(Protocol):
    stage: Stage

    def prepare(self, session: Session, company: Company) -> Any:
        """Copies what ``run`` needs out of the aggregate (the aggregate stays on its thread)."""

    def run(self, inputs: Any, ctx: WorkContext) -> Any:
        """Does the work; returns the output or raises StageError."""

    def record(self, session: Session, attempt: int, output: Any, now: datetime) -> None:
        """Records the output through the aggregate's commands."""
