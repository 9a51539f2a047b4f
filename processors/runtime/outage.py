"""Which exceptions mean "the database is away" (wait and retry) rather than a bug (crash)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

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


def short_error(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


class Outage:
    """The daemon's view of a database outage: since when, when to try again (backing off),
    and when to say it is still going on."""

    def __init__(self, reconnect_max: float, log_interval: float) -> None:
        self.reconnect_max = reconnect_max
        self.log_interval = log_interval
        self.since: float | None = None
        self.retry_at = 0.0
        self._backoff = 0.5
        self._last_log = 0.0

    @property
    def offline(self) -> bool:
        return self.since is not None

    def failed(self, now: float) -> str | None:
        """A try failed at ``now``: "began" for a new outage, "ongoing" when it is time to
        say so again, None otherwise. Schedules the next try."""
        said: str | None = None
        if self.since is None:
            self.since = now
            self._last_log = now
            self._backoff = 0.5
            said = "began"
        elif now - self._last_log >= self.log_interval:
            self._last_log = now
            said = "ongoing"
        self.retry_at = now + self._backoff
        self._backoff = min(self.reconnect_max, self._backoff * 2)
        return said

    def ended(self, now: float) -> float:
        """The database answered: how long it was away."""
        away = now - (self.since if self.since is not None else now)
        self.since = None
        return away

    def report(
        self, error: BaseException, now: float, waiting: int, log: Callable[..., None]
    ) -> bool:
        """A step failed because the database is away: says so when an outage begins and now
        and then while it lasts. True when this failure began a new outage."""
        said = self.failed(now)
        if said == "began":
            log(
                "database_unavailable",
                error=short_error(error),
                detail="no new work starts; outcomes and paid answers are kept until it returns",
            )
        elif said == "ongoing" and self.since is not None:
            log(
                "database_still_unavailable",
                seconds=round(now - self.since),
                waiting_to_store=waiting,
                error=short_error(error),
            )
        return said == "began"
