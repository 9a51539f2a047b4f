"""The baseline: livedash-node's `SessionProcessingStatus` design in plain SQL.

One row per session × stage, every transition an upsert in its own transaction, as the
original's ProcessingStatusManager did through Prisma. It lives in its own table so it shares
the database (and its fsync cost) with our event store while the two are measured side by side.
The raw driver is used on purpose: it gives the baseline less overhead than Prisma had, so a
ratio in our favour is not an artefact of a slow client.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg

from store.database_url import DatabaseConfig

TABLE = "BenchSessionProcessingStatus"
STAGES = (
    "CSV_IMPORT",
    "TRANSCRIPT_FETCH",
    "SESSION_CREATION",
    "AI_ANALYSIS",
    "QUESTION_EXTRACTION",
)
WORKER_STAGES = STAGES[1:]

_DDL = (
    f'CREATE TABLE IF NOT EXISTS "{TABLE}" ('
    ' "id" TEXT PRIMARY KEY,'
    ' "sessionId" TEXT NOT NULL,'
    ' "stage" TEXT NOT NULL,'
    " \"status\" TEXT NOT NULL DEFAULT 'PENDING',"
    ' "startedAt" TIMESTAMP,'
    ' "completedAt" TIMESTAMP,'
    ' "errorMessage" TEXT,'
    ' "retryCount" INTEGER NOT NULL DEFAULT 0,'
    ' "metadata" {json},'
    ' UNIQUE ("sessionId", "stage"))',
    f'CREATE INDEX IF NOT EXISTS "{TABLE}_stage_status" ON "{TABLE}" ("stage", "status")',
    f'CREATE INDEX IF NOT EXISTS "{TABLE}_sessionId" ON "{TABLE}" ("sessionId")',
)

_UPSERT = (
    f'INSERT INTO "{TABLE}" ("id", "sessionId", "stage", "status", "startedAt", "completedAt",'
    ' "errorMessage", "retryCount", "metadata")'
    " VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, 0, {p})"
    ' ON CONFLICT ("sessionId", "stage") DO UPDATE SET'
    ' "status" = excluded."status",'
    f' "startedAt" = COALESCE(excluded."startedAt", "{TABLE}"."startedAt"),'
    ' "completedAt" = excluded."completedAt",'
    ' "errorMessage" = excluded."errorMessage",'
    f' "retryCount" = "{TABLE}"."retryCount" + {{retry}},'
    f' "metadata" = COALESCE(excluded."metadata", "{TABLE}"."metadata")'
)

_OVERVIEW = f'SELECT "stage", "status", count(*) FROM "{TABLE}" GROUP BY "stage", "status"'

# The same mix of statuses as benchlib.fill_status_tables, per session n and stage index k.
_FILL_CASE = (
    "CASE WHEN s.n % 20 < 14 THEN 'COMPLETED' "
    "WHEN s.n % 20 < 16 THEN (CASE WHEN st.k < 3 THEN 'COMPLETED' ELSE 'PENDING' END) "
    "WHEN s.n % 20 < 18 THEN (CASE WHEN st.k = 0 THEN 'COMPLETED' WHEN st.k = 1 THEN 'FAILED' "
    "ELSE 'PENDING' END) "
    "WHEN s.n % 20 = 18 THEN (CASE WHEN st.k = 0 THEN 'COMPLETED' WHEN st.k = 1 THEN 'SKIPPED' "
    "WHEN st.k = 2 THEN 'IN_PROGRESS' ELSE 'PENDING' END) "
    "ELSE (CASE WHEN st.k = 0 THEN 'COMPLETED' ELSE 'PENDING' END) END"
)
_FILL_STAGES = ",".join(f"('{name}',{k})" for k, name in enumerate(STAGES))


class StateTable:
    """The status manager: start, complete and fail a stage, and count by stage × status."""

    def __init__(self, database_url: str) -> None:
        self.config = DatabaseConfig.from_url(database_url)
        self.pg = self.config.kind != "sqlite"
        self.conn: Any = self._connect()
        self.mark = "%s" if self.pg else "?"

    def _connect(self) -> Any:
        if self.pg:
            c = self.config
            return psycopg.connect(
                host=c.host, port=c.port, user=c.user, password=c.password or None, dbname=c.dbname
            )
        # The same journal as the event store in this file (eventsourcing's SQLite recorder
        # turns on WAL and leaves synchronous at its default), so both pay the same fsyncs.
        conn = sqlite3.connect(self.config.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def close(self) -> None:
        self.conn.close()

    def create(self) -> None:
        for ddl in _DDL:
            self.conn.execute(ddl.format(json="JSONB" if self.pg else "TEXT"))
        self.conn.commit()

    def initialise(self, session_ids: Iterable[str], now: datetime) -> int:
        """What the original's import did for each new session: CSV_IMPORT completed and a
        PENDING row for each later stage. Bulk, one transaction: it is set-up, not measured."""
        rows = []
        for sid in session_ids:
            for stage in STAGES:
                done = stage == "CSV_IMPORT"
                rows.append(
                    (
                        uuid.uuid4().hex,
                        sid,
                        stage,
                        "COMPLETED" if done else "PENDING",
                        self._ts(now) if done else None,
                        self._ts(now) if done else None,
                    )
                )
        p = self.mark
        with self._cursor() as cur:
            cur.executemany(
                f'INSERT INTO "{TABLE}" ("id", "sessionId", "stage", "status", "startedAt",'
                f' "completedAt") VALUES ({p}, {p}, {p}, {p}, {p}, {p})',
                rows,
            )
        self.conn.commit()
        return len(rows)

    def _cursor(self) -> Any:
        if self.pg:
            return self.conn.cursor()
        return _SqliteCursor(self.conn)

    def _ts(self, now: datetime) -> Any:
        """psycopg takes datetimes; sqlite3's default adapter is deprecated, so pass text."""
        return now if self.pg else now.astimezone(UTC).isoformat(sep=" ")

    def _upsert(self, values: tuple[Any, ...], retry: int = 0) -> None:
        """One transition = one statement in its own transaction."""
        self.conn.execute(_UPSERT.format(p=self.mark, retry=retry), values)
        self.conn.commit()

    def start(self, session_id: str, stage: str, now: datetime) -> None:
        self._upsert(
            (uuid.uuid4().hex, session_id, stage, "IN_PROGRESS", self._ts(now), None, None, None)
        )

    def complete(
        self, session_id: str, stage: str, now: datetime, metadata: dict[str, Any] | None
    ) -> None:
        self._upsert(
            (
                uuid.uuid4().hex,
                session_id,
                stage,
                "COMPLETED",
                None,
                self._ts(now),
                None,
                json.dumps(metadata) if metadata is not None else None,
            )
        )

    def fail(self, session_id: str, stage: str, now: datetime, error: str) -> None:
        self._upsert(
            (uuid.uuid4().hex, session_id, stage, "FAILED", None, self._ts(now), error, None),
            retry=1,
        )

    def overview(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for stage, status, n in self.conn.execute(_OVERVIEW).fetchall():
            counts.setdefault(stage, {})[status] = int(n)
        self.conn.commit()  # end the read transaction, as a request would
        return counts

    def fill(self, n: int) -> None:
        """n synthetic sessions (5 rows each) generated by the database, same status mix as
        our status tables get from benchlib.fill_status_tables."""
        cols = '"id", "sessionId", "stage", "status", "startedAt", "completedAt", "metadata"'
        if self.pg:
            self.conn.execute(
                f'INSERT INTO "{TABLE}" ({cols}) '
                "SELECT md5(s.n || st.name), md5('syn' || s.n), st.name, "
                f"{_FILL_CASE}, now(), now(), '{{}}'::jsonb "
                f"FROM generate_series(1, {int(n)}) AS s(n) "
                f"CROSS JOIN (VALUES {_FILL_STAGES}) AS st(name, k)"
            )
            self.conn.commit()
            with psycopg.connect(self.config_dsn(), autocommit=True) as c:
                c.execute(f'VACUUM ANALYZE "{TABLE}"')
            return
        self.conn.execute(
            f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {int(n)}),"
            f" st(name, k) AS (VALUES {_FILL_STAGES}) "
            f'INSERT INTO "{TABLE}" ({cols}) '
            "SELECT printf('%d-%s', s.n, st.name), printf('syn%d', s.n), st.name, "
            f"{_FILL_CASE}, datetime('now'), datetime('now'), '{{}}' FROM s CROSS JOIN st"
        )
        self.conn.commit()
        self.conn.execute("ANALYZE")
        self.conn.commit()

    def config_dsn(self) -> str:
        c = self.config
        auth = c.user + (f":{c.password}" if c.password else "")
        return f"postgresql://{auth}@{c.host}:{c.port}/{c.dbname}"


class _SqliteCursor:
    """sqlite3's cursor as a context manager, like psycopg's."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.cur = conn.cursor()

    def __enter__(self) -> sqlite3.Cursor:
        return self.cur

    def __exit__(self, *exc: object) -> None:
        self.cur.close()


def run_workload(
    table: StateTable,
    session_ids: list[str],
    batch: int,
    now: Callable[[], datetime],
    metadata: dict[str, Any],
) -> int:
    """The same work, in the same order, as the event-sourced side: per batch of sessions and
    per worker stage, start each, then complete each; one transaction per transition.
    Returns the number of transitions."""
    count = 0
    for i in range(0, len(session_ids), batch):
        chunk = session_ids[i : i + batch]
        for stage in WORKER_STAGES:
            for sid in chunk:
                table.start(sid, stage, now())
            for sid in chunk:
                table.complete(sid, stage, now(), metadata)
            count += 2 * len(chunk)
    return count
