"""What an auditor can search an event by, and how each event moves a stage's status.

The event index (projections/event_index.py) stores these facts for every event of the log;
`livedash events` filters on them. Pure: no I/O, the same answer for the same event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.company import Company
from domain.session import Session
from domain.stages import REOPENED_BY_ROW_CHANGE, STAGE_ORDER, Stage, Status
from domain.urls import redact

SESSION_EVENTS: tuple[type[Any], ...] = (
    Session.Imported,
    Session.SourceRowChanged,
    Session.StageStarted,
    Session.StageCompleted,
    Session.StageFailed,
    Session.StageReleased,
    Session.LeaseExtended,
    Session.AIRequestSent,
    Session.StageSkipped,
    Session.StageReset,
    Session.AIUsageRecorded,
    Session.TranscriptFetched,
    Session.SessionParsed,
    Session.AnalysisRecorded,
    Session.QuestionsExtracted,
)
COMPANY_EVENTS: tuple[type[Any], ...] = (
    Company.Created,
    Company.Registered,
    Company.StatusChanged,
    Company.SettingsChanged,
    Company.AuthPolicyChanged,
    Company.ImportRecorded,
)
EVENT_TYPES: tuple[str, ...] = tuple(c.__name__ for c in SESSION_EVENTS + COMPANY_EVENTS)
"""The names `--type` accepts (the event class's name; unique across the aggregates)."""

DATA_STAGE: dict[str, Stage] = {
    "Imported": Stage.CSV_IMPORT,
    "SourceRowChanged": Stage.CSV_IMPORT,
    "TranscriptFetched": Stage.TRANSCRIPT_FETCH,
    "SessionParsed": Stage.SESSION_CREATION,
    "AnalysisRecorded": Stage.AI_ANALYSIS,
    "QuestionsExtracted": Stage.QUESTION_EXTRACTION,
}
"""Events without a ``stage`` field that belong to one stage all the same."""

Statuses = dict[str, str]
"""A session's stage -> status, by value."""


def type_name(topic: str) -> str:
    """``livedash:Session.StageFailed`` -> ``StageFailed``."""
    return topic.rsplit(":", 1)[-1].rsplit(".", 1)[-1]


def parse_type(value: str) -> str:
    """The event type a user typed (any case, ``Session.`` prefix allowed), or ValueError."""
    key = value.strip().rsplit(".", 1)[-1].casefold()
    for name in EVENT_TYPES:
        if name.casefold() == key:
            return name
    raise ValueError(f"unknown event type {value!r}; expected one of {', '.join(EVENT_TYPES)}")


def stage_of(kind: str, event: Any) -> Stage | None:
    stage = getattr(event, "stage", None)
    return stage if isinstance(stage, Stage) else DATA_STAGE.get(kind)


def next_statuses(statuses: Statuses, kind: str, stage: str | None) -> Statuses:
    """The session's statuses after an event of type ``kind`` on ``stage``: the same moves
    as domain/stage_state.py, reduced to the status (what the index needs for before/after)."""
    if kind == "Imported":
        fresh = {s.value: Status.PENDING.value for s in STAGE_ORDER}
        fresh[Stage.CSV_IMPORT.value] = Status.COMPLETED.value
        return fresh
    after = dict(statuses)
    if kind == "SourceRowChanged":
        for s in REOPENED_BY_ROW_CHANGE:
            after[s.value] = Status.PENDING.value
    elif kind == "StageReset" and stage is not None:
        for s in Stage(stage).and_later():
            after[s.value] = Status.PENDING.value
    elif stage is not None and kind in MOVES_TO:
        after[stage] = MOVES_TO[kind]
    return after


MOVES_TO: dict[str, str] = {
    "StageStarted": Status.IN_PROGRESS.value,
    "StageCompleted": Status.COMPLETED.value,
    "StageFailed": Status.FAILED.value,
    "StageReleased": Status.PENDING.value,
    "StageSkipped": Status.SKIPPED.value,
}


@dataclass(frozen=True)
class Facts:
    """An event's searchable fields (the session's company and the statuses come from its
    earlier events: the index supplies them)."""

    type: str
    time: datetime
    session_id: UUID | None
    company_id: UUID | None
    stage: str | None
    attempt: int | None
    worker: str | None
    actor: str | None
    error_type: str | None


def facts(event: Any) -> Facts:
    kind = type(event).__name__
    is_session = isinstance(event, Session.Event)
    stage = stage_of(kind, event) if is_session else None
    attempt = getattr(event, "attempt", None)
    return Facts(
        type=kind,
        time=event.timestamp,
        session_id=event.originator_id if is_session else None,
        company_id=getattr(event, "company_id", None) if is_session else event.originator_id,
        stage=stage.value if stage else None,
        attempt=attempt if isinstance(attempt, int) else None,
        worker=_text(getattr(event, "worker", None)),
        actor=_text(getattr(event, "actor", None)),
        error_type=_text(getattr(event, "error_type", None)),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def summary(event: Any) -> str:
    """One line on what the event carried: what an auditor reads in a table or a grep."""
    if isinstance(event, Session.StageFailed):
        retry = f"retry at {event.retry_at.isoformat()}" if event.retry_at else "no retry"
        return f"{event.error_type}: {redact(event.error)} ({retry})"
    if isinstance(event, Session.StageStarted | Session.LeaseExtended):
        return f"lease until {event.lease_expires_at.isoformat()}"
    if isinstance(event, Session.StageCompleted):
        return ", ".join(f"{k}={v}" for k, v in list(event.metadata.items())[:6])
    if isinstance(event, Session.Imported | Session.SourceRowChanged):
        return f"row {event.row.fingerprint()[:12]} from {redact(event.source)}"
    if isinstance(event, Session.TranscriptFetched):
        t = event.transcript
        return f"{t.size} bytes from {redact(t.url)}"
    if isinstance(event, Session.SessionParsed):
        return f"{len(event.messages)} messages"
    if isinstance(event, Session.AnalysisRecorded):
        a = event.analysis
        return f"{event.provider}/{event.model}: {a.sentiment.value}, {a.category.value}"
    if isinstance(event, Session.QuestionsExtracted):
        return f"{len(event.questions)} questions"
    if isinstance(event, Session.AIRequestSent):
        return f"{event.intent.model} {event.intent.purpose}"
    if isinstance(event, Session.AIUsageRecorded):
        u = event.usage
        cost = f", {u.cost_eur} EUR" if u.cost_eur is not None else ""
        return f"{u.model_requested}: {u.total_tokens} tokens{cost}"
    if isinstance(event, Company.Registered):
        return f"{event.name} ({event.status.value}) from {redact(event.csv_url)}"
    if isinstance(event, Company.StatusChanged):
        return f"status {event.status.value}"
    if isinstance(event, Company.SettingsChanged):
        return f"csv {redact(event.csv_url)}, timezone {event.timezone}"
    if isinstance(event, Company.AuthPolicyChanged):
        return f"auth scope {', '.join(event.auth_scope) or '-'}"
    if isinstance(event, Company.ImportRecorded):
        r = event.run
        return f"{r.outcome}: {r.rows_seen} rows, {r.new} new, {r.changed} changed"
    return ""


def reason(event: Any) -> str | None:
    return _text(getattr(event, "reason", None))
