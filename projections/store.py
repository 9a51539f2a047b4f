"""The projection store's engine: one place that knows SQLite and PostgreSQL differ."""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    String,
    create_engine,
    delete,
    event,
    func,
    inspect,
)
from sqlalchemy.pool import ConnectionPoolEntry

from projections.cost_rollup import backfill
from projections.ready import backfill_ready
from projections.schema import (
    ExactDecimal,
    ai_cost_daily,
    ai_usage,
    analytics_sessions,
    metadata,
    projection_tracking,
    session_questions,
)

WRITE = {"livedash_write": True}


class SchemaMissing(RuntimeError):
    """The tables are not there: `livedash init` has not been run on this database."""


SQLITE_MONEY_SUM = "livedash_decimal_sum"


class _DecimalSum:
    """SQLite's sum() of text is a float sum: this one adds the stored decimals exactly."""

    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: Any) -> None:
        if value is None:
            return
        amount = Decimal(str(value))  # text as stored; a REAL or INTEGER from an older row
        with localcontext() as ctx:
            ctx.prec = 200  # exact for any real amount: no rounding while adding
            self.total = amount if self.total is None else self.total + amount

    def finalize(self) -> str | None:
        return None if self.total is None else format(self.total, "f")


def make_engine(url: str, pool_size: int = 5, search_path: str | None = None) -> Engine:
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
        connect_args={"connect_timeout": 5, "options": _options(search_path)},
    )


def _options(search_path: str | None) -> str:
    options = "-c synchronous_commit=off"
    return options + (f" -c search_path={search_path}" if search_path else "")


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
        dbapi_conn.create_aggregate(SQLITE_MONEY_SUM, 1, _DecimalSum)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("livedash_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def money_sum(conn: Connection, column: Any) -> ColumnElement[Any]:
    """SUM of an ``ExactDecimal`` column as an exact Decimal (None when every value is NULL):
    PostgreSQL sums NUMERIC exactly; on SQLite the aggregate registered above does."""
    total: ColumnElement[Any]
    if conn.dialect.name == "sqlite":
        total = getattr(func, SQLITE_MONEY_SUM)(column, type_=ExactDecimal())
    else:
        total = func.sum(column, type_=ExactDecimal())
    return total


ANALYTICS = "analytics"
"""The analytics projection's name in ``projection_tracking``."""


def money_outdated(engine: Engine) -> bool:
    """True for a database made before money was exact (NUMERIC(18, 8) on PostgreSQL, a
    NUMERIC-affinity column holding floats on SQLite)."""
    names = set(inspect(engine).get_table_names())
    if ai_usage.name not in names:
        return False
    column = next(c for c in inspect(engine).get_columns(ai_usage.name) if c["name"] == "cost_eur")
    kind = column["type"]
    if engine.dialect.name == "sqlite":
        return not isinstance(kind, String)
    return getattr(kind, "scale", None) is not None


def upgrade_money(engine: Engine) -> bool:
    """Recreates the analytics tables with exact money columns; their rows come back from the
    log on the next catch-up (the projection starts again at position 0). True if it did."""
    if not money_outdated(engine):
        return False
    with engine.connect().execution_options(**WRITE) as conn, conn.begin():
        for table in (ai_usage, ai_cost_daily, session_questions, analytics_sessions):
            table.drop(conn, checkfirst=True)
        conn.execute(delete(projection_tracking).where(projection_tracking.c.name == ANALYTICS))
    metadata.create_all(engine)
    return True


def create_schema(engine: Engine) -> None:
    existing = set(inspect(engine).get_table_names())
    upgrade_money(engine)
    metadata.create_all(engine)
    if "session_stage_status" in existing:
        _add_attempts_run(engine)
    _add_indexes(engine, existing)
    if "ai_cost_daily" not in existing and "ai_usage" in existing:
        # Analytics built before the cost rollup existed: derive it once from the usage rows.
        with engine.connect().execution_options(**WRITE) as conn, conn.begin():
            backfill(conn)
    if "stage_ready" not in existing and "session_stage_status" in existing:
        # A status projection built before `stage_ready` existed: derive it once.
        with engine.connect().execution_options(**WRITE) as conn, conn.begin():
            backfill_ready(conn)


def _add_indexes(engine: Engine, existing: set[str]) -> None:
    """Indexes declared since a table was made: `create_all` skips a table that exists, and
    with it every index the table gained later (e.g. the per-company due-work ones)."""
    inspector = inspect(engine)
    for name in sorted(existing & set(metadata.tables)):
        table = metadata.tables[name]
        have = {ix["name"] for ix in inspector.get_indexes(name)}
        missing = [ix for ix in table.indexes if ix.name not in have]
        if not missing:
            continue
        with engine.connect().execution_options(**WRITE) as conn, conn.begin():
            for index in missing:
                index.create(conn, checkfirst=True)


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


def analyze(engine: Engine) -> None:
    """Fresh PostgreSQL planner statistics for every projection table (nothing on SQLite).

    Tables filled with many rows in one go are otherwise read by sequential scans until
    autovacuum gets to them.
    """
    if engine.dialect.name != "postgresql":
        return
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ANALYZE {tables}")
