"""Report shapes: what the queries return and what `--json` prints (field names are contracts)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field


class CompanyInfo(BaseModel):
    company_id: UUID
    name: str
    status: str
    csv_url: str
    username: str | None
    password_ref: str | None
    timezone: str
    ai_model: str | None
    registered_at: datetime
    status_reason: str | None = None
    sessions: int = 0
    last_import: ImportRunInfo | None = None
    auth_scope: list[str] = Field(default_factory=list)
    """Origins besides the CSV source's that receive the credentials."""
    allow_plain_http_auth: bool = False
    ai_budget: str | None = None
    """EUR per period (``50/month``) the company's AI work may cost; None: no cap."""
    retain_transcripts: str | None = None
    """``90d``: the daemon erases a session's personal data that long after it started."""


class RejectionInfo(BaseModel):
    row_number: int
    reason: str
    raw_line: str


class ImportRunInfo(BaseModel):
    run_id: UUID
    company: str
    source: str
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    outcome: str
    rows_seen: int
    new: int
    changed: int
    unchanged: int
    rejected: int
    bytes: int
    http_status: int | None
    error: str | None
    rejections: list[RejectionInfo] = Field(default_factory=list)
    encoding: str | None = None
    """Set by `import` from the run it just made (the projection does not keep it)."""


class StageRow(BaseModel):
    session_id: UUID
    company_id: UUID
    external_id: str
    stage: str
    status: str
    attempt: int
    retry_count: int
    attempts_run: int = 0
    worker: str | None
    started_at: datetime | None
    completed_at: datetime | None
    lease_expires_at: datetime | None
    retry_at: datetime | None
    error_type: str | None
    error_message: str | None
    retryable: bool | None
    note: str | None
    metadata: dict[str, Any]
    updated_at: datetime

    @property
    def will_retry(self) -> bool:
        return self.status == "FAILED" and self.retry_at is not None


class FailureInfo(BaseModel):
    session_id: UUID
    external_id: str
    company_id: UUID
    stage: str
    attempt: int
    retry_count: int
    attempts_run: int = 0
    """Attempts that ran (claims handed back unstarted are not counted)."""
    retryable: bool | None = None
    """False once retries are exhausted or the error is permanent."""
    error_type: str | None
    error_message: str | None
    will_retry: bool
    retry_at: datetime | None
    failed_at: datetime | None


class NeedsProcessing(BaseModel):
    pending: int
    failed_retrying: int
    failed_dead: int
    in_progress: int


class OldestPending(BaseModel):
    stage: str
    session_id: UUID
    external_id: str
    since: datetime
    age_seconds: float


class WaitingCompany(BaseModel):
    company: str
    status: str
    waiting_sessions: int
    reason: str


class BudgetInfo(BaseModel):
    """A company's (or, ``scope`` ``installation``, everybody's) AI budget in its period."""

    scope: str
    budget: str
    """EUR per period: ``50/month``."""
    spent_eur: Decimal
    """Paid in the period, plus the estimates of requests whose answer is pending or lost."""
    period_start: datetime
    resumes_at: datetime
    """The end of the period: when AI work goes on if the budget is reached."""
    reached: bool
    waiting_sessions: int = 0
    """Sessions whose AI_ANALYSIS waits for the budget."""


class ImportWarning(BaseModel):
    """A company whose last import needs an operator: empty, every row rejected, or failed."""

    company: str
    outcome: str
    finished_at: datetime
    rows_seen: int
    error: str | None
    message: str


class FleetInfo(BaseModel):
    live_daemons: int
    """Daemons whose heartbeat is fresh (`livedash workers` lists them)."""
    partitions_unowned: int | None
    """PostgreSQL: partitions no live daemon holds (None on SQLite, which runs one daemon)."""


class PauseInfo(BaseModel):
    """A stage an operator paused (`livedash stage pause`): for every company or one."""

    stage: str
    company: str | None
    """None: every company."""
    reason: str
    actor: str
    since: datetime


class BreakerInfo(BaseModel):
    """A stage's circuit breaker against its provider, when not plainly closed."""

    stage: str
    provider: str
    state: str
    """open, half_open or closed."""
    reason: str
    since: datetime | None
    cool_down_seconds: float
    reopens_at: datetime | None
    """While open: when one probe may go."""
    probe_by: str | None
    """While half-open: the daemon sending the probe."""
    changed_by: str | None = None
    """The daemon that recorded the last change."""


class StatusReport(BaseModel):
    generated_at: datetime
    company: str | None
    total_sessions: int
    stages: dict[str, dict[str, int]]
    needs_processing: dict[str, NeedsProcessing]
    recent_failures: list[FailureInfo]
    failed_total: int
    oldest_pending: OldestPending | None
    waiting_companies: list[WaitingCompany]
    import_warnings: list[ImportWarning] = Field(default_factory=list)
    fleet: FleetInfo | None = None
    budgets: list[BudgetInfo] = Field(default_factory=list)
    """Every AI budget that is set, with its spend; ``reached`` ones hold AI work back."""
    paused: list[PauseInfo] = Field(default_factory=list)
    """Stages paused by an operator (from the pipeline's events)."""
    breakers: list[BreakerInfo] = Field(default_factory=list)
    """Circuit breakers that opened at least once (from the pipeline's events)."""
    personal_data: Literal["sealed", "plain"] | None = None
    """``sealed``: personal values are encrypted with per-session keys, so `erase` can
    shred them; ``plain``: no master key on a database never sealed (`erase` cannot)."""


CompanyInfo.model_rebuild()
