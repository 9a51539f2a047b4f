"""Per-stage state and the pure transitions applied to it.

The Session aggregate and the status projection apply the very same functions, so the
status table cannot drift from what the events mean; only persistence differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.stages import REOPENED_BY_ROW_CHANGE, STAGE_ORDER, Stage, Status


@dataclass
class StageState:
    status: Status = Status.PENDING
    attempt: int = 0
    """Number of the last attempt ever started; never reused, so a stale worker is always caught."""
    retry_count: int = 0
    """Failures since the stage was last (re)opened; drives the retry policy. A claim handed
    back before its work started (`StageReleased`) is no failure."""
    attempts_run: int = 0
    """Attempts that ran, over the stage's whole life: started and not handed back."""
    worker: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    lease_expires_at: datetime | None = None
    retry_at: datetime | None = None
    error_type: str | None = None
    error_message: str | None = None
    retryable: bool | None = None
    note: str | None = None
    """Why a stage was skipped or reopened."""
    metadata: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None

    def reopen(self, at: datetime, note: str | None) -> None:
        fresh = StageState(
            attempt=self.attempt, attempts_run=self.attempts_run, note=note, updated_at=at
        )
        self.__dict__.update(fresh.__dict__)

    @property
    def is_dead(self) -> bool:
        return self.status is Status.FAILED and self.retry_at is None

    def lease_live(self, now: datetime) -> bool:
        return (
            self.status is Status.IN_PROGRESS
            and self.lease_expires_at is not None
            and self.lease_expires_at > now
        )


StageStates = dict[Stage, StageState]


def new_states() -> StageStates:
    return {stage: StageState() for stage in STAGE_ORDER}


def on_imported(states: StageStates, at: datetime) -> None:
    for stage in STAGE_ORDER:
        states[stage] = StageState(updated_at=at)
    csv = states[Stage.CSV_IMPORT]
    csv.status = Status.COMPLETED
    csv.started_at = at
    csv.completed_at = at


def on_row_changed(states: StageStates, at: datetime) -> None:
    for stage in REOPENED_BY_ROW_CHANGE:
        states[stage].reopen(at, "source row changed")
    csv = states[Stage.CSV_IMPORT]
    csv.completed_at = at
    csv.updated_at = at


def on_started(
    states: StageStates,
    stage: Stage,
    attempt: int,
    worker: str,
    lease_expires_at: datetime,
    at: datetime,
) -> None:
    s = states[stage]
    s.status = Status.IN_PROGRESS
    s.attempt = attempt
    s.attempts_run += 1
    s.worker = worker
    s.started_at = at
    s.completed_at = None
    s.lease_expires_at = lease_expires_at
    s.retry_at = None
    s.note = None
    s.updated_at = at


def on_completed(states: StageStates, stage: Stage, metadata: dict[str, Any], at: datetime) -> None:
    s = states[stage]
    s.status = Status.COMPLETED
    s.completed_at = at
    s.lease_expires_at = None
    s.retry_at = None
    s.error_type = None
    s.error_message = None
    s.retryable = None
    s.metadata = dict(metadata)
    s.updated_at = at


def on_failed(
    states: StageStates,
    stage: Stage,
    error_type: str,
    error_message: str,
    retryable: bool,
    retry_at: datetime | None,
    at: datetime,
) -> None:
    s = states[stage]
    s.status = Status.FAILED
    s.retry_count += 1
    s.completed_at = at
    s.lease_expires_at = None
    s.error_type = error_type
    s.error_message = error_message
    # A failure with no time to retry is dead whatever the error was: retries exhausted.
    s.retryable = retryable and retry_at is not None
    s.retry_at = retry_at
    s.updated_at = at


def on_released(states: StageStates, stage: Stage, reason: str, at: datetime) -> None:
    """A claim handed back before its work started: waiting again, no attempt used."""
    s = states[stage]
    s.status = Status.PENDING
    s.attempts_run = max(0, s.attempts_run - 1)
    s.worker = None
    s.started_at = None
    s.completed_at = None
    s.lease_expires_at = None
    s.retry_at = None
    s.note = f"released: {reason}"
    s.updated_at = at


def on_lease_extended(states: StageStates, stage: Stage, lease_expires_at: datetime) -> None:
    """A heartbeat: the running attempt holds its claim longer (not a status change)."""
    s = states[stage]
    if s.status is Status.IN_PROGRESS:
        s.lease_expires_at = lease_expires_at


def on_skipped(states: StageStates, stage: Stage, reason: str, at: datetime) -> None:
    s = states[stage]
    s.status = Status.SKIPPED
    s.completed_at = at
    s.lease_expires_at = None
    s.retry_at = None
    s.note = reason
    s.updated_at = at


def on_reset(states: StageStates, stage: Stage, reason: str, at: datetime) -> None:
    for later in stage.and_later():
        states[later].reopen(at, f"reset: {reason}" if reason else "reset")
