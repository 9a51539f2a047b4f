"""An audit view of a company's events: who changed what, when and why."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from domain.company import Company, CredentialRef

SETTINGS = (
    "csv_url",
    "username",
    "password_ref",
    "timezone",
    "ai_model",
    "retain_transcripts_days",
)


class CompanyHistoryEntry(BaseModel):
    version: int
    timestamp: datetime
    event: str
    actor: str | None = None
    reason: str | None = None
    changes: dict[str, str]
    """Each setting or status this event changed: name -> "BEFORE -> AFTER" (credentials only
    as their reference, never a secret)."""
    data: dict[str, Any] = {}


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, CredentialRef):
        return value.describe()
    return str(getattr(value, "value", value))


def describe_company(events: Iterable[Any]) -> list[CompanyHistoryEntry]:
    entries: list[CompanyHistoryEntry] = []
    company: Company | None = None
    for event in events:
        before = _state(company)
        company = event.mutate(company)
        assert company is not None
        after = _state(company)
        changes = {
            k: f"{_shown(before.get(k))} -> {_shown(v)}"
            for k, v in after.items()
            if k not in before or before[k] != v
        }
        data: dict[str, Any] = {}
        if isinstance(event, Company.ImportRecorded):
            run = event.run
            data = {
                "outcome": run.outcome,
                "rows_seen": run.rows_seen,
                "new": run.new,
                "changed": run.changed,
                "rejected": run.rejected,
            }
        elif isinstance(event, Company.AIBudgetReached):
            data = {
                "spent_eur": event.spent_eur,
                "budget_eur": event.budget_eur,
                "resumes_at": event.resumes_at.isoformat(),
            }
        entries.append(
            CompanyHistoryEntry(
                version=event.originator_version,
                timestamp=event.timestamp,
                event=type(event).__name__,
                actor=getattr(event, "actor", None),
                reason=getattr(event, "reason", None),
                changes=changes,
                data=data,
            )
        )
    return entries


def _state(company: Company | None) -> dict[str, Any]:
    if company is None:
        return {}
    return {"status": company.status, **{k: getattr(company, k) for k in SETTINGS}}
