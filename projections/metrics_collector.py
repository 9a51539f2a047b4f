"""Installation-wide gauges for Prometheus, read from the projection store: how many sessions
stand where (stage x status), how much work is due now per stage, how far each projection lags
the log, how many daemons are live.

They describe the whole installation, not one process: `livedash serve` exports them once, and
each daemon started with `run --metrics-port` exports them too (labelled with its worker id),
so a dashboard takes ``max without (worker)`` of them, never a sum.

Reading them costs a few indexed queries, so a reading is kept for ``max_age`` seconds (longer
when a reading is slow, see ``SHARE``): any number of scrapers (or a page that refreshes) cost
the database at most one reading per ``max_age``. When the database is away the scrape still
answers: ``livedash_store_up`` is 0 and the other gauges of this collector are left out (no
stale numbers posing as fresh ones).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, func, select

from domain.stages import WORKER_STAGES, Status
from projections.queries import overview
from projections.ready import QUEUED
from projections.runner import Lag, ProjectionRunner
from projections.schema import companies, stage_ready
from projections.schema import session_stage_status as sss
from projections.workers import fleet_info

SHARE = 10.0
"""A reading is kept at least this many times as long as it took: however often the pages are
scraped, reading the store takes at most a tenth of one database connection's time."""


@dataclass(frozen=True)
class StoreReading:
    """One reading of the projection store (what the gauges show)."""

    sessions: dict[str, dict[str, int]]
    due: dict[str, int]
    lag: list[Lag]
    live_daemons: int
    partitions_unowned: int | None


def due_backlog(conn: Connection, now: datetime) -> dict[str, int]:
    """Per worker stage, the stages a worker would take now (of ACTIVE companies): leases
    that expired, retries whose time has come, and PENDING stages ready to start. Counted
    with the indexes the daemon's own due-work queries use (`projections/work.py`)."""
    active = select(companies.c.company_id).where(companies.c.status == "ACTIVE")
    counts = {stage.value: 0 for stage in WORKER_STAGES}
    # Grouped by an expression, not the column: SQLite would otherwise walk the whole
    # (stage, status, ...) index for the grouping's order instead of the range on (status,
    # retry_at) (measured 87-126 ms instead of 0.1 ms at 100,000 sessions).
    stage = sss.c.stage + ""
    expired = (
        select(stage, func.count())
        .where(
            sss.c.status == Status.IN_PROGRESS.value,
            sss.c.lease_expires_at <= now,
            sss.c.company_id.in_(active),
        )
        .group_by(stage)
    )
    retry = (
        select(stage, func.count())
        .where(
            sss.c.status == Status.FAILED.value,
            sss.c.retry_at <= now,
            sss.c.company_id.in_(active),
        )
        .group_by(stage)
    )
    ready = (
        select(stage_ready.c.stage, func.count())
        .where(stage_ready.c.company_id.in_(active))
        .group_by(stage_ready.c.stage)
    )
    first = (  # TRANSCRIPT_FETCH waits for no other worker stage: every PENDING one is due
        select(sss.c.stage, func.count())
        .where(
            sss.c.stage.in_([s.value for s in WORKER_STAGES if s not in QUEUED]),
            sss.c.status == Status.PENDING.value,
            sss.c.company_id.in_(active),
        )
        .group_by(sss.c.stage)
    )
    for query in (expired, retry, ready, first):
        for stage, n in conn.execute(query).all():
            if stage in counts:
                counts[stage] += int(n)
    return counts


def read_store(runner: ProjectionRunner, now: datetime) -> StoreReading:
    with runner.engine.connect() as conn:
        sessions = overview(conn)
        due = due_backlog(conn, now)
        fleet = fleet_info(conn, now)
    return StoreReading(
        sessions=sessions,
        due=due,
        lag=runner.lag(),
        live_daemons=fleet.live_daemons,
        partitions_unowned=fleet.partitions_unowned,
    )


class StoreGauges(Collector):
    """A Prometheus collector of the installation-wide gauges (see the module's docstring).

    ``labels`` are added to every sample (a daemon adds ``worker``; `serve` adds none)."""

    def __init__(
        self,
        runner: ProjectionRunner,
        max_age: float = 1.0,
        labels: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        share: float = SHARE,
    ) -> None:
        self.runner = runner
        self.max_age = max_age
        self.share = share
        self.labels = dict(labels or {})
        self.clock = clock
        self._lock = threading.Lock()
        self._reading: StoreReading | None = None
        self._read_at = float("-inf")
        self._fresh_for = max_age

    def reading(self) -> StoreReading | None:
        """The latest reading, fresh within ``max_age`` (or within ``SHARE`` times what the
        last reading took, if longer); None while the store is unreachable."""
        with self._lock:
            if time.monotonic() - self._read_at >= self._fresh_for:
                began = time.monotonic()
                try:
                    self._reading = read_store(self.runner, self.clock())
                except Exception:  # either driver's error, the event store's own types
                    self._reading = None
                self._read_at = time.monotonic()
                self._fresh_for = max(self.max_age, self.share * (self._read_at - began))
            return self._reading

    def collect(self) -> Iterator[Metric]:
        reading = self.reading()
        up = self._gauge(
            "livedash_store_up", "1 when the projection store answered the last reading", []
        )
        up.add_metric(self._values(), 1.0 if reading is not None else 0.0)
        yield up
        if reading is not None:
            yield from self._gauges(reading)

    def _gauges(self, r: StoreReading) -> Iterable[Metric]:
        sessions = self._gauge(
            "livedash_sessions", "Sessions per stage and status (the status projection)",
            ["stage", "status"],
        )  # fmt: skip
        for stage, statuses in r.sessions.items():
            for status, n in statuses.items():
                sessions.add_metric(self._values(stage, status), n)
        due = self._gauge(
            "livedash_stage_due",
            "Stages a worker would take now: expired leases, retries due, ready PENDING",
            ["stage"],
        )
        for stage, n in r.due.items():
            due.add_metric(self._values(stage), n)
        events = self._gauge(
            "livedash_projection_lag_events", "Log events a projection has yet to apply",
            ["projection"],
        )  # fmt: skip
        seconds = self._gauge(
            "livedash_projection_lag_seconds",
            "Age of the oldest log event a projection has yet to apply (0: up to date)",
            ["projection"],
        )
        for lag in r.lag:
            events.add_metric(self._values(lag.name), lag.events_behind)
            seconds.add_metric(self._values(lag.name), lag.seconds_behind)
        live = self._gauge(
            "livedash_daemons_live", "Daemons whose heartbeat in the register is fresh", []
        )
        live.add_metric(self._values(), r.live_daemons)
        yield from (sessions, due, events, seconds, live)
        if r.partitions_unowned is not None:
            unowned = self._gauge(
                "livedash_partitions_unowned", "PostgreSQL: session partitions no daemon holds", []
            )
            unowned.add_metric(self._values(), r.partitions_unowned)
            yield unowned

    def _gauge(self, name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=[*labels, *self.labels])

    def _values(self, *values: str) -> list[str]:
        return [*values, *self.labels.values()]


class Labelled(Collector):
    """Another collector's (or registry's) samples with ``labels`` added to each: how every
    sample of a daemon gets its ``worker`` label without each metric declaring it."""

    def __init__(self, inner: Collector, labels: Mapping[str, str]) -> None:
        self.inner = inner
        self.labels = dict(labels)

    def collect(self) -> Iterator[Metric]:
        for family in self.inner.collect():
            copy = Metric(family.name, family.documentation, family.type, family.unit)
            copy.samples = [s._replace(labels={**s.labels, **self.labels}) for s in family.samples]
            yield copy
