"""Bulk reads and upserts for the projections' hot tables, at the driver level.

SQLAlchemy Core's per-parameter processing costs more than the database itself for pages of
thousands of rows, so pages are written here with one statement: ``executemany`` of a prepared
upsert on SQLite, a single ``INSERT ... SELECT FROM unnest(arrays)`` on PostgreSQL. Values are
stored exactly as the Core tables store them (SQLite: hex UUIDs, ``YYYY-MM-DD HH:MM:SS.ffffff``
UTC text, JSON text), so Core queries read them back unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Connection

Row = tuple[Any, ...]
COPY_THRESHOLD = 500
"""From this many rows on, COPY into a staging table beats a pipelined executemany."""


def _sqlite_dt(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _from_sqlite_dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _hex(value: UUID | None) -> str | None:
    return None if value is None else value.hex


def _uuid(value: str | None) -> UUID | None:
    return None if value is None else UUID(value)


def _bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _from_bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _json(value: Any) -> str:
    if not value and isinstance(value, dict):
        return "{}"  # most stage rows: worth the shortcut on pages of 10k rows
    return json.dumps(value, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a JSON column")


def _from_json(value: str | None) -> Any:
    return json.loads(value) if value else {}


def _same(value: Any) -> Any:
    return value


SQLITE_ENCODE: dict[str, Callable[[Any], Any]] = {
    "uuid": _hex,
    "timestamptz": _sqlite_dt,
    "bool": _bool,
    "json": _json,
}
SQLITE_DECODE: dict[str, Callable[[Any], Any]] = {
    "uuid": _uuid,
    "timestamptz": _from_sqlite_dt,
    "bool": _from_bool,
    "json": _from_json,
}


@dataclass(frozen=True)
class BulkTable:
    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    """PostgreSQL type of each column (text, int, bigint, uuid, timestamptz, bool, json)."""
    key: tuple[str, ...]

    def upsert(self, conn: Connection, rows: Sequence[Row]) -> None:
        if not rows:
            return
        cols = ", ".join(self.columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in self.columns if c not in self.key)
        conflict = f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {updates}"
        if conn.dialect.name == "postgresql":
            if len(rows) >= COPY_THRESHOLD:
                self._pg_upsert(conn, rows, cols, conflict)
            else:
                marks = ", ".join(["%s"] * len(self.columns))
                json_cols = {i for i, t in enumerate(self.types) if t == "json"}
                conn.exec_driver_sql(
                    f"INSERT INTO {self.name} ({cols}) VALUES ({marks}) {conflict}",
                    [
                        tuple(_json(v) if i in json_cols else v for i, v in enumerate(row))
                        for row in rows
                    ],
                )
            return
        encoders = [SQLITE_ENCODE.get(t, _same) for t in self.types]
        marks = ", ".join("?" * len(self.columns))
        conn.exec_driver_sql(
            f"INSERT INTO {self.name} ({cols}) VALUES ({marks}) {conflict}",
            [tuple(enc(v) for enc, v in zip(encoders, row, strict=True)) for row in rows],
        )

    def _pg_upsert(self, conn: Connection, rows: Sequence[Row], cols: str, conflict: str) -> None:
        """COPY into a transaction-scoped temporary table, then one upsert from it."""
        raw = conn.connection.driver_connection
        assert raw is not None
        staging = f"_in_{self.name}"
        json_cols = [i for i, t in enumerate(self.types) if t == "json"]
        with raw.cursor() as cur:
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
                f"(LIKE {self.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            with cur.copy(f"COPY {staging} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    if json_cols:
                        values = list(row)
                        for i in json_cols:
                            values[i] = _json(values[i])
                        copy.write_row(values)
                    else:
                        copy.write_row(row)
            cur.execute(f"INSERT INTO {self.name} ({cols}) SELECT {cols} FROM {staging} {conflict}")
            cur.execute(f"TRUNCATE {staging}")

    def load(self, conn: Connection, column: str, keys: Sequence[UUID]) -> list[Row]:
        """Rows whose UUID ``column`` is one of ``keys``, decoded to Python values."""
        dialect = conn.dialect.name
        return [self.decode(dialect, row) for row in self.load_raw(conn, column, keys)]

    def load_raw(self, conn: Connection, column: str, keys: Sequence[UUID]) -> list[Row]:
        """The same rows as the driver returns them; ``decode`` turns one into Python values
        (a caller that needs few of the rows it reads decodes only those)."""
        if not keys:
            return []
        cols = ", ".join(self.columns)
        if conn.dialect.name == "postgresql":
            # IN with one parameter per key: psycopg dumps a UUID array in Python, slowly.
            marks = ", ".join(["%s"] * len(keys))
            result = conn.exec_driver_sql(
                f"SELECT {cols} FROM {self.name} WHERE {column} IN ({marks})", tuple(keys)
            )
            return list(result.fetchall())
        rows: list[Row] = []
        hexes = [k.hex for k in keys]
        for i in range(0, len(hexes), 900):
            chunk = hexes[i : i + 900]
            marks = ",".join("?" * len(chunk))
            result = conn.exec_driver_sql(
                f"SELECT {cols} FROM {self.name} WHERE {column} IN ({marks})", tuple(chunk)
            )
            rows.extend(result.fetchall())
        return rows

    def decode(self, dialect: str, row: Row) -> Row:
        if dialect == "postgresql":
            return tuple(
                json.loads(v) if t == "json" and isinstance(v, str) else v
                for v, t in zip(row, self.types, strict=True)
            )
        return tuple(SQLITE_DECODE.get(t, _same)(v) for v, t in zip(row, self.types, strict=True))


STAGE_ROWS = BulkTable(
    "session_stage_status",
    (
        "session_id", "stage", "company_id", "external_id", "status", "attempt", "retry_count",
        "worker", "started_at", "completed_at", "lease_expires_at", "retry_at", "error_type",
        "error_message", "retryable", "note", "metadata", "updated_at", "attempts_run",
    ),
    (
        "uuid", "text", "uuid", "text", "text", "int", "int", "text", "timestamptz",
        "timestamptz", "timestamptz", "timestamptz", "text", "text", "bool", "text", "json",
        "timestamptz", "int",
    ),
    ("session_id", "stage"),
)  # fmt: skip

SESSION_ROWS = BulkTable(
    "sessions",
    (
        "session_id", "company_id", "external_id", "row_fingerprint", "start_time", "end_time",
        "transcript_url", "imported_at", "updated_at",
    ),
    ("uuid", "uuid", "text", "text", "timestamptz", "timestamptz", "text", "timestamptz",
     "timestamptz"),
    ("session_id",),
)  # fmt: skip
