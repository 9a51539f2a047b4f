"""The projection store's engine: one place that knows SQLite and PostgreSQL differ."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.pool import ConnectionPoolEntry

from projections.ready import backfill_ready
from projections.schema import metadata

WRITE = {"livedash_write": True}


class SchemaMissing(RuntimeError):
    """The tables are not there: `livedash init` has not been run on this database."""


def make_engine(url: str, pool_size: int = 5) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_transactions(engine)
        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        # Everything written through this engine is a projection, rebuilt from the log, and
        # its position commits with its rows: after a crash both roll back together. So no
        # commit here waits for the WAL flush (the event store's commits still do).
        connect_args={"connect_timeout": 5, "options": "-c synchronous_commit=off"},
    )


def _sqlite_transactions(engine: Engine) -> None:
    """Writers take the write lock up front: a deferred transaction that reads first fails at
    once (SQLITE_BUSY) instead of waiting when another writer commits in between."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("livedash_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_schema(engine: Engine) -> None:
    existing = set(inspect(engine).get_table_names())
    metadata.create_all(engine)
    if "session_stage_status" in existing:
        _add_attempts_run(engine)
    if "stage_ready" not in existing and "session_stage_status" in existing:
        # A status projection built before `stage_ready` existed: derive it once.
        with engine.connect().execution_options(**WRITE) as conn, conn.begin():
            backfill_ready(conn)


def _add_attempts_run(engine: Engine) -> None:
    """A status table built before `attempts_run` existed: until then no claim was ever handed
    back, so every attempt started had run."""
    columns = {c["name"] for c in inspect(engine).get_columns("session_stage_status")}
    if "attempts_run" in columns:
        return
    with engine.connect().execution_options(**WRITE) as conn, conn.begin():
        conn.exec_driver_sql(
            "ALTER TABLE session_stage_status ADD COLUMN attempts_run INTEGER NOT NULL DEFAULT 0"
        )
        conn.exec_driver_sql("UPDATE session_stage_status SET attempts_run = attempt")


def check_schema(engine: Engine) -> None:
    names = set(inspect(engine).get_table_names())
    missing = [t for t in metadata.tables if t not in names]
    if missing:
        raise SchemaMissing(f"projection tables missing: {', '.join(sorted(missing))}")


def write_connection(engine: Engine) -> Connection:
    return engine.connect().execution_options(**WRITE)
