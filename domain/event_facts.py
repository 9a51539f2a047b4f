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
    Session.PersonalDataErased,
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
    first: bool = False
    """The session's first event: nothing earlier to remember."""


@dataclass(frozen=True)
class _Shape:
    """What an event class carries, worked out once per class (the index meets every event
    of the log: per-event isinstance and Enum lookups were a third of its catch-up)."""

    kind: str
    is_session: bool
    data_stage: str | None
    fields: frozenset[str]


_SHAPES: dict[type[Any], _Shape] = {}


def _shape(cls: type[Any]) -> _Shape:
    shape = _SHAPES.get(cls)
    if shape is None:
        kind = cls.__name__
        data_stage = DATA_STAGE.get(kind)
        names = frozenset(getattr(cls, "__annotations__", {})) | frozenset(
            n for c in cls.__mro__ for n in getattr(c, "__annotations__", {})
        )
        shape = _Shape(
            kind, issubclass(cls, Session.Event), data_stage.value if data_stage else None, names
        )
        _SHAPES[cls] = shape
    return shape


def facts(event: Any) -> Facts:
    shape = _shape(type(event))
    has = shape.fields
    stage = shape.data_stage
    if "stage" in has:
        stage = event.stage._value_
    attempt = event.attempt if "attempt" in has else None
    if shape.is_session:
        session_id = event.originator_id
        company_id = event.company_id if "company_id" in has else None
    else:
        session_id, company_id = None, event.originator_id
    return Facts(
        type=shape.kind,
        time=event.timestamp,
        session_id=session_id,
        company_id=company_id,
        stage=stage if shape.is_session else None,
        attempt=attempt if isinstance(attempt, int) else None,
        worker=_text(event.worker) if "worker" in has else None,
        actor=_text(event.actor) if "actor" in has else None,
        error_type=_text(event.error_type) if "error_type" in has else None,
        first=shape.kind == "Imported",
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
    if isinstance(event, Session.PersonalDataErased):
        return f"personal data erased by {event.actor}: {len(event.fields)} fields"
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
