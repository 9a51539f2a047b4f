"""PostgreSQL LISTEN: wakes the daemon the moment any process appends events.

A lost notification costs at most one poll interval, because the daemon's loop never stops
polling; this thread only makes the common case fast.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
from psycopg import sql

from store.database_url import DatabaseConfig


class PgListener:
    def __init__(self, config: DatabaseConfig, channel: str, wake: Callable[[], None]) -> None:
        self.config = config
        self.channel = channel
        self.wake = wake
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ld-listen", daemon=True)

    def start(self) -> PgListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    host=self.config.host,
                    port=self.config.port,
                    user=self.config.user,
                    password=self.config.password or None,
                    dbname=self.config.dbname,
                    autocommit=True,
                    connect_timeout=5,
                ) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.wake()
            except psycopg.Error:
                self._stop.wait(1.0)  # reconnect; polling covers the gap
