"""Portable bulk upserts (SQLite and PostgreSQL both speak ON CONFLICT)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def dialect_insert(conn: Connection, table: Table) -> Any:
    """INSERT with the dialect's ON CONFLICT clauses."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    add: Sequence[str] = (),
) -> None:
    """Inserts rows, replacing the non-key columns of existing ones; ``add`` columns are summed."""
    if not rows:
        return
    stmt = dialect_insert(conn, table)
    columns = [c for c in rows[0] if c not in keys]
    set_ = {c: (table.c[c] + stmt.excluded[c]) if c in add else stmt.excluded[c] for c in columns}
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=set_)
    conn.execute(stmt, list(rows))
