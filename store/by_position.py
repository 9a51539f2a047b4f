"""Stored events by log position: the few events a query of the event index returned.

The library reads the log only in ranges; a filtered page holds scattered positions, so they
are read here with one query (the table and its id column as the library creates them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import sql


def stored_events_at(
    recorder: ApplicationRecorder, positions: Sequence[int]
) -> dict[int, StoredEvent]:
    """Position -> stored event, for those of ``positions`` the log holds."""
    if not positions:
        return {}
    found: dict[int, StoredEvent] = {}
    rec: Any = recorder
    table = rec.events_table_name
    for i in range(0, len(positions), 900):
        chunk = list(positions[i : i + 900])
        if isinstance(recorder, PostgresApplicationRecorder):
            query = sql.SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state "
                "FROM {}.{} WHERE notification_id = ANY(%s)"
            ).format(sql.Identifier(rec.datastore.schema), sql.Identifier(table))
            with rec.datastore.transaction(commit=False) as curs:
                curs.execute(query, [chunk])
                for r in curs.fetchall():
                    found[r["notification_id"]] = StoredEvent(
                        r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"])
                    )
        else:
            marks = ",".join("?" * len(chunk))
            with rec.datastore.transaction(commit=False) as curs:
                curs.execute(
                    "SELECT rowid, originator_id, originator_version, topic, state "
                    f"FROM {table} WHERE rowid IN ({marks})",
                    chunk,
                )
                for r in curs.fetchall():
                    found[r[0]] = StoredEvent(UUID(r[1]), r[2], r[3], r[4])
    return found
