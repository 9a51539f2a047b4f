"""The daemons' register: each running daemon keeps its row fresh; `livedash workers` and
`status` read who is live, what each holds and does, and who died recently."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from projections.models import FleetInfo
from projections.partitions import unowned_partitions
from projections.schema import daemon_workers
from projections.store import WRITE
from projections.upsert import dialect_insert

DEAD_AFTER = 10.0
"""Seconds without a heartbeat after which a daemon counts as dead (a few beats)."""


class WorkerInfo(BaseModel):
    worker_id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    stop_reason: str | None
    live: bool
    partitions: int
    in_flight: dict[str, int]
    completed_last_minute: int


def database_now(conn: Connection, clock: Callable[[], datetime]) -> datetime:
    """PostgreSQL's time (one clock for daemons on many machines), or ``clock`` on SQLite."""
    if conn.dialect.name == "postgresql":
        value: datetime = conn.execute(select(func.now())).scalar_one()
        return value
    return clock()


def _now(conn: Connection, clock: Callable[[], datetime]) -> ColumnElement[datetime] | datetime:
    return func.now() if conn.dialect.name == "postgresql" else clock()


def workers(
    conn: Connection, now: datetime, dead_after: float = DEAD_AFTER, recent: float = 3600.0
) -> list[WorkerInfo]:
    """Live daemons first, then those that stopped or died within ``recent`` seconds
    (``now``: `database_now`, as the heartbeats are written in the database's time)."""
    fresh = now - timedelta(seconds=dead_after)
    rows = conn.execute(
        select(daemon_workers)
        .where(
            or_(
                daemon_workers.c.heartbeat_at >= now - timedelta(seconds=recent),
                daemon_workers.c.stopped_at >= now - timedelta(seconds=recent),
            )
        )
        .order_by(daemon_workers.c.started_at, daemon_workers.c.worker_id)
    ).all()
    found = [
        WorkerInfo(
            worker_id=r.worker_id,
            host=r.host,
            pid=r.pid,
            started_at=r.started_at,
            heartbeat_at=r.heartbeat_at,
            stopped_at=r.stopped_at,
            stop_reason=r.stop_reason,
            live=r.stopped_at is None and r.heartbeat_at >= fresh,
            partitions=r.partitions,
            in_flight={str(k): int(v) for k, v in (r.in_flight or {}).items()},
            completed_last_minute=r.completed_last_minute,
        )
        for r in rows
    ]
    return sorted(found, key=lambda w: not w.live)


@dataclass
class _Sample:
    at: float
    completed: int


class Presence:
    """One daemon's row: written when it starts, every ``interval`` seconds while it runs
    (one UPDATE), and when it stops. Completions in the last minute are derived from the
    running total, so the daemon only reports counters it keeps anyway."""

    def __init__(
        self,
        engine: Engine,
        worker_id: str,
        host: str,
        pid: int,
        clock: Callable[[], datetime],
        interval: float = 2.0,
    ) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.host = host
        self.pid = pid
        self.clock = clock
        self.interval = interval
        self._next = 0.0
        self._samples: deque[_Sample] = deque()

    def join(self) -> None:
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            now = _now(conn, self.clock)
            values = {
                "host": self.host,
                "pid": self.pid,
                "started_at": now,
                "heartbeat_at": now,
                "stopped_at": None,
                "stop_reason": None,
                "in_flight": {},
                "completed_last_minute": 0,
                "partitions": 0,
            }
            conn.execute(
                dialect_insert(conn, daemon_workers)
                .values(worker_id=self.worker_id, **values)
                .on_conflict_do_update(index_elements=["worker_id"], set_=values)
            )
        self._next = time.monotonic() + self.interval
        self._samples = deque([_Sample(time.monotonic(), 0)])

    def beat(self, in_flight: dict[str, int], completed: int, partitions: int = 0) -> bool:
        """Refreshes the row when a beat is due; True when it wrote."""
        mono = time.monotonic()
        if mono < self._next:
            return False
        self._next = mono + self.interval
        self._samples.append(_Sample(mono, completed))
        while len(self._samples) > 1 and self._samples[1].at <= mono - 60:
            self._samples.popleft()
        self._write(
            in_flight=in_flight,
            completed_last_minute=completed - self._samples[0].completed,
            partitions=partitions,
        )
        return True

    def leave(self, reason: str) -> None:
        self._write(stopped=True, stop_reason=reason, in_flight={})

    def _write(self, stopped: bool = False, **values: object) -> None:
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            now = _now(conn, self.clock)
            conn.execute(
                update(daemon_workers)
                .where(daemon_workers.c.worker_id == self.worker_id)
                .values(heartbeat_at=now, **({"stopped_at": now} if stopped else {}), **values)
            )


def fleet_info(conn: Connection, now: datetime) -> FleetInfo:
    """How many daemons are live and, on PostgreSQL, how many partitions nobody holds."""
    live = sum(1 for w in workers(conn, database_now(conn, lambda: now)) if w.live)
    unowned = unowned_partitions(conn) if conn.dialect.name == "postgresql" else None
    return FleetInfo(live_daemons=live, partitions_unowned=unowned)
