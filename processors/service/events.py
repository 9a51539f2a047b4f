"""`livedash events`: the log's events that match a query, as records an auditor reads.

The event index says which positions match; only those events are read from the log and
decoded, for what the index does not keep (the reason, the summary of the payload).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import Engine

from domain.event_facts import reason, summary
from projections.event_queries import EventQuery, company_names, external_ids, find_events
from store.application import LiveDashApp
from store.by_position import stored_events_at
from store.sealing import decode_all

FIELDS: tuple[str, ...] = (
    "position",
    "time",
    "type",
    "session_id",
    "external_id",
    "company",
    "stage",
    "status_before",
    "status_after",
    "attempt",
    "worker",
    "actor",
    "reason",
    "error_type",
    "summary",
)
"""The stable field names of `--json` and `--csv`, in their order."""


class EventRecord(BaseModel):
    position: int
    time: datetime
    type: str
    session_id: UUID | None
    external_id: str | None
    company: str | None
    """The company's name (its id when the company is unknown to the projection)."""
    stage: str | None
    status_before: str | None
    """The stage's status before the event; None for a session's first event."""
    status_after: str | None
    attempt: int | None
    worker: str | None
    actor: str | None
    reason: str | None
    error_type: str | None
    summary: str

    def flat(self) -> dict[str, Any]:
        """JSON-ready values in FIELDS order (times in ISO 8601, ids as text)."""
        data = self.model_dump(mode="json")
        return {k: data[k] for k in FIELDS}


def query_events(app: LiveDashApp, engine: Engine, q: EventQuery) -> list[EventRecord]:
    with engine.connect() as conn:
        rows = find_events(conn, q)
        session_ids = [r.session_id for r in rows if r.session_id is not None]
        names = external_ids(conn, session_ids)
        companies = company_names(conn, [r.company_id for r in rows if r.company_id is not None])
    stored = stored_events_at(app.recorder, [r.position for r in rows])
    # One query for the page's data keys when personal data is sealed.
    decoded = dict(zip(stored, decode_all(app.mapper, list(stored.values())), strict=True))
    records = []
    for r in rows:
        event: Any = decoded.get(r.position)
        external = names.get(r.session_id) if r.session_id is not None else None
        if external is None and event is not None:
            external = getattr(event, "external_id", None)
        company = companies.get(r.company_id) if r.company_id is not None else None
        if company is None and r.company_id is not None:
            company = str(r.company_id)
        records.append(
            EventRecord(
                position=r.position,
                time=r.time,
                type=r.type,
                session_id=r.session_id,
                external_id=external,
                company=company,
                stage=r.stage,
                status_before=r.status_before,
                status_after=r.status_after,
                attempt=r.attempt,
                worker=r.worker,
                actor=r.actor,
                reason=reason(event) if event is not None else None,
                error_type=r.error_type,
                summary=summary(event) if event is not None else "",
            )
        )
    return records
