"""An audit view of a session's events: what happened, to which stage, and what it changed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from domain.session import Session
from domain.stages import STAGE_ORDER, Stage
from domain.urls import redact


class HistoryEntry(BaseModel):
    version: int
    timestamp: datetime
    event: str
    stage: str | None
    status_before: str | None
    status_after: str | None
    changes: dict[str, str]
    """Every stage whose status this event changed: stage -> "BEFORE -> AFTER"."""
    attempt: int | None = None
    worker: str | None = None
    lease_expires_at: datetime | None = None
    error_type: str | None = None
    error: str | None = None
    retryable: bool | None = None
    retry_at: datetime | None = None
    reason: str | None = None
    actor: str | None = None
    metadata: dict[str, Any] = {}
    data: dict[str, Any] = {}


def _data_summary(event: Any) -> dict[str, Any]:
    """What a data event carried, summarised: the audit trail says what, not the whole text."""
    if isinstance(event, Session.Imported | Session.SourceRowChanged):
        row = event.row
        return {
            "source": redact(event.source),  # events from before URL passwords were refused
            "row_fingerprint": row.fingerprint(),
            "start_time": row.start_time.isoformat(),
            "end_time": row.end_time.isoformat(),
            "transcript_url": redact(row.transcript_url) if row.transcript_url else None,
        }
    if isinstance(event, Session.TranscriptFetched):
        t = event.transcript
        return {
            "url": redact(t.url),
            "sha256": t.sha256,
            "size": t.size,
            "content_type": t.content_type,
        }
    if isinstance(event, Session.SessionParsed):
        return {"messages": len(event.messages), "fields": event.fields.model_dump(mode="json")}
    if isinstance(event, Session.AnalysisRecorded):
        return {
            "provider": event.provider,
            "model": event.model,
            "prompt_version": event.prompt_version,
            "analysis": event.analysis.model_dump(mode="json"),
        }
    if isinstance(event, Session.QuestionsExtracted):
        return {"questions": list(event.questions)}
    if isinstance(event, Session.StageReset):
        reset_from = event.reset_from.value if event.reset_from else None
        return {"force": event.force, "reset_from": reset_from}
    if isinstance(event, Session.AIRequestSent):
        return event.intent.model_dump(mode="json")
    if isinstance(event, Session.PersonalDataErased):
        return {"fields": list(event.fields)}
    if isinstance(event, Session.AIUsageRecorded):
        usage = event.usage.model_dump(mode="json")
        usage.pop("response_text", None)
        return usage
    return {}


def describe(events: Iterable[Any]) -> list[HistoryEntry]:
    entries: list[HistoryEntry] = []
    session: Session | None = None
    for event in events:
        before = {s: session.stages[s].status for s in STAGE_ORDER} if session else {}
        session = event.mutate(session)
        assert session is not None
        after = {s: session.stages[s].status for s in STAGE_ORDER}
        changes = {
            s.value: f"{before[s].value if s in before else '-'} -> {after[s].value}"
            for s in STAGE_ORDER
            if before.get(s) is not after[s]
        }
        stage: Stage | None = getattr(event, "stage", None)
        if isinstance(event, Session.Imported):
            stage = Stage.CSV_IMPORT
        elif isinstance(event, Session.TranscriptFetched):
            stage = Stage.TRANSCRIPT_FETCH
        elif isinstance(event, Session.SessionParsed):
            stage = Stage.SESSION_CREATION
        elif isinstance(event, Session.AnalysisRecorded):
            stage = Stage.AI_ANALYSIS
        elif isinstance(event, Session.QuestionsExtracted):
            stage = Stage.QUESTION_EXTRACTION
        entries.append(
            HistoryEntry(
                version=event.originator_version,
                timestamp=event.timestamp,
                event=type(event).__name__,
                stage=stage.value if stage else None,
                status_before=before[stage].value if stage and stage in before else None,
                status_after=after[stage].value if stage else None,
                changes=changes,
                attempt=getattr(event, "attempt", None),
                worker=getattr(event, "worker", None),
                lease_expires_at=getattr(event, "lease_expires_at", None),
                error_type=getattr(event, "error_type", None),
                error=redact(event.error) if getattr(event, "error", None) else None,
                retryable=getattr(event, "retryable", None),
                retry_at=getattr(event, "retry_at", None),
                reason=getattr(event, "reason", None),
                actor=getattr(event, "actor", None),
                metadata=dict(getattr(event, "metadata", {}) or {}),
                data=_data_summary(event),
            )
        )
    return entries
