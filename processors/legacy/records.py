"""The legacy rows the migration reads, as plain values (no behaviour, no I/O).

Timestamps are always timezone-aware UTC here: the reader attaches UTC to the older variant's
`timestamp(3) without time zone` columns, which Prisma fills with UTC wall times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

UnitKey = tuple[str | None, str | None, str, str | None]
"""(import id, session id, company id, externalSessionId): one future session."""


@dataclass(slots=True)
class LegacyCompany:
    id: str
    name: str
    csv_url: str
    username: str | None
    has_password: bool
    """Whether a plaintext password is stored; the password itself is never read."""
    status: str | None
    created_at: datetime


@dataclass(slots=True)
class LegacyImport:
    id: str
    company_id: str
    external_id: str
    start_raw: str | None
    end_raw: str | None
    ip_address: str | None
    country: str | None
    language: str | None
    messages_sent: int | None
    sentiment_raw: str | None
    escalated_raw: str | None
    forwarded_hr_raw: str | None
    transcript_url: str | None
    avg_response_time: float | None
    tokens: int | None
    tokens_eur: float | None
    category: str | None
    initial_message: str | None
    transcript: str | None
    created_at: datetime
    status: str | None = None
    """Pre-refactor only: QUEUED, PROCESSING, DONE or ERROR."""
    error: str | None = None
    processed_at: datetime | None = None


@dataclass(slots=True)
class LegacySession:
    id: str
    company_id: str
    import_id: str | None
    start_time: datetime | None
    end_time: datetime | None
    ip_address: str | None
    country: str | None
    transcript_url: str | None
    avg_response_time: float | None
    initial_message: str | None
    language: str | None
    messages_sent: int | None
    sentiment: str | None
    escalated: bool | None
    forwarded_hr: bool | None
    category: str | None
    summary: str | None
    created_at: datetime
    updated_at: datetime
    processed: bool | None = None
    """Pre-refactor only."""


@dataclass(slots=True)
class LegacyMessage:
    timestamp: datetime | None
    role: str | None
    content: str | None
    order: int
    created_at: datetime | None


@dataclass(slots=True)
class LegacyQuestion:
    question_id: str
    content: str | None
    order: int
    created_at: datetime | None


@dataclass(slots=True)
class LegacyAIRequest:
    id: str
    request_id: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    cached_tokens: int | None
    reasoning_tokens: int | None
    prompt_price: float | None
    completion_price: float | None
    cost_eur: float | None
    success: bool | None
    error: str | None
    requested_at: datetime
    completed_at: datetime | None


@dataclass(slots=True)
class LegacyStatus:
    stage: str
    status: str
    started_at: datetime | None
    completed_at: datetime | None
    error: str | None
    retry_count: int
    metadata: Any


@dataclass(slots=True)
class LegacyUnit:
    """One future session: a legacy session with its import, or an import that never became one."""

    company: LegacyCompany
    imp: LegacyImport | None
    session: LegacySession | None
    messages: list[LegacyMessage] = field(default_factory=list)
    questions: list[LegacyQuestion] = field(default_factory=list)
    requests: list[LegacyAIRequest] = field(default_factory=list)
    statuses: dict[str, LegacyStatus] = field(default_factory=dict)

    @property
    def legacy_session_id(self) -> str | None:
        return self.session.id if self.session else None

    @property
    def legacy_import_id(self) -> str | None:
        return self.imp.id if self.imp else None
