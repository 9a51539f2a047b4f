"""Which exceptions mean "the database is away" (wait and retry) rather than a bug (crash)."""

from __future__ import annotations

import sqlite3

import psycopg
import psycopg_pool
import sqlalchemy.exc
from eventsourcing.persistence import InterfaceError, OperationalError

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
    OperationalError,
    InterfaceError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlite3.OperationalError,
    ConnectionError,
)


def is_database_unavailable(error: BaseException) -> bool:
    """True for a lost or refused connection, a pool that cannot get one, a locked SQLite
    file: conditions that pass. Walks the chain of causes, since each layer wraps the last."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNAVAILABLE):
            return True
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False
