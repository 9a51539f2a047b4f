"""The paid-request projection: each intent stored before a model request was sent, and
whether its answer was recorded. An intent still unanswered once its attempt is over (the
status table says so, read at query time) is a request whose answer was lost: paid, most
likely, and reported with its estimated cost, never as nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, update

from domain.session import Session
from projections.runner import Event
from projections.schema import ai_requests
from projections.upsert import upsert

SENT, ANSWERED = "sent", "answered"


class AIRequestProjection:
    name = "ai_requests"
    topics: tuple[str, ...] = (Session.AIRequestSent.TOPIC, Session.AIUsageRecorded.TOPIC)
    tables: tuple[str, ...] = (ai_requests.name,)

    def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        new: dict[str, dict[str, Any]] = {}
        answered: set[str] = set()
        event: Any
        for event in events:
            if isinstance(event, Session.AIRequestSent):
                intent = event.intent
                new[intent.client_request_id] = {
                    "client_request_id": intent.client_request_id,
                    "session_id": event.originator_id,
                    "stage": event.stage.value,
                    "attempt": event.attempt,
                    "model": intent.model,
                    "purpose": intent.purpose,
                    "prompt_tokens_estimated": intent.prompt_tokens_estimated,
                    "cost_eur_estimated": intent.cost_eur_estimated,
                    "sent_at": intent.sent_at,
                    "state": SENT,
                }
            elif isinstance(event, Session.AIUsageRecorded):
                rid = event.usage.client_request_id
                if rid is None:
                    continue
                if rid in new:
                    new[rid]["state"] = ANSWERED
                else:
                    answered.add(rid)
        upsert(conn, ai_requests, list(new.values()), ("client_request_id",))
        ids = sorted(answered)
        for i in range(0, len(ids), 500):
            conn.execute(
                update(ai_requests)
                .where(ai_requests.c.client_request_id.in_(ids[i : i + 500]))
                .values(state=ANSWERED)
            )

    def forget(self) -> None:
        """Nothing is kept between pages."""

    def clear(self, conn: Connection) -> None:
        conn.execute(delete(ai_requests))
