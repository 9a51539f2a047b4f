"""The erasure projection: records who erased which session and when, and scrubs the copies
of its personal values that other projections made before the erasure.

A rebuild of those projections cannot bring the values back: their events decode redacted
once the key is gone. The scrub writes the same redacted values a rebuild would, so a
projection verified against its rebuild still matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, bindparam, delete, select, update

from domain.personal import REDACTED_SUMMARY
from domain.session import Session
from projections.runner import Event
from projections.schema import analytics_sessions, erased_sessions, session_questions, sessions
from projections.upsert import upsert

ERASED_ANALYTICS = {"ip_address": None, "initial_message": None}
"""analytics_sessions columns that copy personal values, as they read once erased (the
summary too, when the session had one)."""


class ErasureProjection:
    name = "erasure"
    topics: tuple[str, ...] = (Session.PersonalDataErased.TOPIC,)
    tables: tuple[str, ...] = (erased_sessions.name,)

    def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        rows: dict[UUID, dict[str, Any]] = {}
        fingerprints: dict[UUID, str] = {}
        event: Any
        for event in events:
            fingerprints[event.originator_id] = event.row_fingerprint
            rows.setdefault(
                event.originator_id,
                {
                    "session_id": event.originator_id,
                    "erased_at": event.timestamp,
                    "actor": event.actor,
                    "reason": event.reason,
                },
            )
        upsert(conn, erased_sessions, list(rows.values()), ("session_id",))
        ids = sorted(rows)
        for i in range(0, len(ids), 500):
            scrub(conn, ids[i : i + 500])
        # The original row's fingerprint is a hash of its personal values: the redacted
        # row's, as a rebuild computes it.
        conn.execute(
            update(sessions)
            .where(sessions.c.session_id == bindparam("sid"))
            .values(row_fingerprint=bindparam("fp")),
            [{"sid": sid, "fp": fp} for sid, fp in fingerprints.items()],
        )

    def forget(self) -> None:
        """Nothing is kept between pages."""

    def clear(self, conn: Connection) -> None:
        conn.execute(delete(erased_sessions))


def scrub(conn: Connection, ids: list[UUID]) -> None:
    a = analytics_sessions
    conn.execute(update(a).where(a.c.session_id.in_(ids)).values(ERASED_ANALYTICS))
    conn.execute(
        update(a)
        .where(a.c.session_id.in_(ids), a.c.summary.is_not(None))
        .values(summary=REDACTED_SUMMARY)
    )
    conn.execute(delete(session_questions).where(session_questions.c.session_id.in_(ids)))
    conn.execute(update(sessions).where(sessions.c.session_id.in_(ids)).values(transcript_url=None))


def erased_among(conn: Connection, ids: Sequence[UUID]) -> set[UUID]:
    """Which of ``ids`` are erased (a projection applying a daemon's events from memory
    must not copy what that daemon still held in plain text)."""
    found: set[UUID] = set()
    for i in range(0, len(ids), 500):
        query = select(erased_sessions.c.session_id).where(
            erased_sessions.c.session_id.in_(list(ids[i : i + 500]))
        )
        found.update(conn.execute(query).scalars())
    return found
