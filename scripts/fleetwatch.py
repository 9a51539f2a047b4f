"""What the fleet bench watches from outside the daemons: the partitions table (who holds
what, when), the CPU the daemons and PostgreSQL use (from /proc: psutil is not installed),
the stage events in the log, and the daemons' own summaries in their logs."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from domain.partitions import PARTITIONS

TICKS = os.sysconf("SC_CLK_TCK")
STAGE_TOPICS = {
    "livedash:Session.StageStarted": "started",
    "livedash:Session.StageCompleted": "completed",
    "livedash:Session.StageFailed": "failed",
    "livedash:Session.StageReleased": "released",
}


# ----------------------------------------------------------------------------- events
@dataclass(frozen=True)
class StageEvent:
    session: UUID
    kind: str
    """started, completed, failed or released"""
    stage: str
    attempt: int
    at: datetime
    worker: str | None
    error_type: str | None


def _plain(value: Any) -> Any:
    """The transcoder wraps typed values as {"_type_": ..., "_data_": ...}."""
    return value["_data_"] if isinstance(value, dict) and "_data_" in value else value


def stage_events(url: str, after_id: int = 0) -> list[StageEvent]:
    """The stage events stored after notification ``after_id``, straight from the table (a
    20k-session run has ~100k of them: reading them aggregate by aggregate takes minutes)."""
    out = []
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT originator_id, topic, state FROM livedash_events "
            "WHERE notification_id > %s AND topic = ANY(%s) ORDER BY notification_id",
            (after_id, list(STAGE_TOPICS)),
        )
        for sid, topic, state in rows:
            body = json.loads(bytes(state))
            out.append(
                StageEvent(
                    session=sid,
                    kind=STAGE_TOPICS[topic],
                    stage=str(_plain(body["stage"])),
                    attempt=int(body["attempt"]),
                    at=datetime.fromisoformat(_plain(body["timestamp"])),
                    worker=body.get("worker"),
                    error_type=body.get("error_type"),
                )
            )
    return out


def last_event_id(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT coalesce(max(notification_id), 0) FROM livedash_events")
        return int(row.fetchone()[0])  # type: ignore[index]


def count_completed(url: str, after_id: int) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM livedash_events WHERE notification_id > %s "
            "AND topic = 'livedash:Session.StageCompleted'",
            (after_id,),
        )
        return int(row.fetchone()[0])  # type: ignore[index]


def stopped_summary(log: Path) -> dict[str, Any] | None:
    """The daemon's last `stopped` line (none when it was killed)."""
    for line in reversed(log.read_text(encoding="utf-8").splitlines()):
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == "stopped":
                return dict(record)
    return None


# ------------------------------------------------------------------------- partitions
@dataclass
class PartitionWatch:
    """Polls the partitions table in a thread: when every daemon first held its fair share,
    and (after `victim_killed`) when a killed daemon's partitions were all held by others."""

    url: str
    workers: list[str]
    interval: float = 0.05
    started: float = field(default_factory=time.monotonic)
    fair_share_at: float | None = None
    held: dict[str, int] = field(default_factory=dict)
    victim: str | None = None
    victim_partitions: frozenset[int] = frozenset()
    killed_at: float | None = None
    reowned_at: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> PartitionWatch:
        self._thread = threading.Thread(target=self._run, name="partition-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def victim_killed(self, worker: str, at: float) -> None:
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                "SELECT partition FROM fleet_partitions WHERE owner = %s", (worker,)
            ).fetchall()
        self.victim_partitions = frozenset(int(r[0]) for r in rows)
        self.victim, self.killed_at = worker, at

    def _run(self) -> None:
        fair = PARTITIONS // len(self.workers)
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(self.interval):
                rows = conn.execute(
                    "SELECT partition, owner, expires_at > now() FROM fleet_partitions"
                ).fetchall()
                now = time.monotonic()
                live = {int(p): o for p, o, alive in rows if o is not None and alive}
                self.held = dict(Counter(live.values()))
                if self.fair_share_at is None and all(
                    self.held.get(w, 0) >= fair for w in self.workers
                ):
                    self.fair_share_at = now - self.started
                if (
                    self.victim
                    and self.reowned_at is None
                    and self.killed_at is not None
                    and all(live.get(p) not in (None, self.victim) for p in self.victim_partitions)
                ):
                    self.reowned_at = now - self.killed_at


# -------------------------------------------------------------------------------- CPU
def _proc_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    except (OSError, IndexError, ValueError):
        return None


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) over all cores since boot."""
    with open("/proc/stat", encoding="ascii") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts) - idle, sum(parts)


class CpuSampler:
    """Samples the CPU time of the daemons, of the PostgreSQL processes that serve the bench
    database (its backends plus the server's background processes) and of the whole
    machine, twice a second; reports each as cores used over the sampled span."""

    def __init__(self, url: str, database: str, groups: dict[str, list[int]]) -> None:
        self.url = url
        self.database = database
        self.groups = {name: list(pids) for name, pids in groups.items()}
        self.first: dict[tuple[str, int], int] = {}
        self.last: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        self._t0 = time.monotonic()
        self._m0 = _machine_ticks()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _pg_pids(self, conn: psycopg.Connection[Any]) -> list[int]:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND (datname = %s OR backend_type <> 'client backend')",
            (self.database,),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def _sample(self, conn: psycopg.Connection[Any]) -> None:
        pids = {**self.groups, "postgres": self._pg_pids(conn)}
        for name, group in pids.items():
            for pid in group:
                ticks = _proc_ticks(pid)
                if ticks is not None:
                    self.first.setdefault((name, pid), ticks)
                    self.last[(name, pid)] = ticks
        self._t1 = time.monotonic()
        self._m1 = _machine_ticks()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            self._sample(conn)
            while not self._stop.wait(0.5):
                self._sample(conn)

    def cores(self) -> dict[str, float]:
        """Cores used on average by each group, and by the whole machine (everyone's work,
        other agents' tests included), over the sampled span."""
        span = max(1e-6, self._t1 - self._t0)
        used: dict[str, float] = {}
        for (name, pid), last in self.last.items():
            used[name] = used.get(name, 0.0) + (last - self.first[(name, pid)]) / TICKS
        out = {name: round(seconds / span, 3) for name, seconds in used.items()}
        busy = self._m1[0] - self._m0[0]
        total = self._m1[1] - self._m0[1]
        out["machine_busy"] = round((os.cpu_count() or 1) * busy / max(1, total), 3)
        return out
