"""The daemon's Prometheus metrics (`livedash run --metrics-port`).

The daemon tells an observer three things: what each commit stored (`stored`), how long a
loop turn took (`turn`), and its per-stage counts at the end of a turn (`tick`). The counters
are derived from the stored events themselves, so they never say more than the log: a claim
that lost a race or an outcome still waiting out an outage is not counted until it is stored.

`LoopObserver` does nothing (a daemon without metrics); `DaemonMetrics` keeps the metrics in
a registry of its own, with the process's own metrics (RSS, CPU, open files), and adds the
daemon's worker id as the label ``worker`` to every sample when collected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import islice
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Recording
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.registry import Collector

from domain.session import LEASE_EXPIRED, Session
from domain.stages import WORKER_STAGES, Stage
from projections.metrics_collector import Labelled

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
"""Parsing takes a millisecond, a fetch a fraction of a second, a model call up to minutes."""
TURN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
MAX_OPEN_CLAIMS = 100_000
"""Claims whose start time is kept for their duration: a claim given up (taken over) never
brings an outcome, so the oldest are forgotten past this many."""

Key = tuple[UUID, Stage, int]


class LoopObserver:
    """What the daemon reports as it goes; this one ignores it all."""

    def stored(self, recordings: Sequence[Recording[UUID]]) -> None:
        """The events one commit stored."""

    def turn(self, seconds: float) -> None:
        """One loop turn took ``seconds``."""

    def tick(self, snapshot: Mapping[str, Any]) -> None:
        """The daemon's counts at the end of a turn (``in_flight`` and ``queued`` per stage)."""


class DaemonMetrics(LoopObserver):
    def __init__(self, worker: str) -> None:
        own = CollectorRegistry(auto_describe=False)
        self.registry = CollectorRegistry(auto_describe=False)
        """What `/metrics` serves: ``own`` with the worker label, and what `include` adds."""
        self.worker = worker
        self.registry.register(Labelled(own, {"worker": worker}))
        ProcessCollector(registry=own)

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, registry=own)

        self.started = counter("livedash_stage_started", "Attempts this daemon claimed", "stage")
        self.completed = counter("livedash_stage_completed", "Attempts completed", "stage")
        self.failed = counter(
            "livedash_stage_failed", "Attempts failed (lease expiries apart)", "stage", "error_type"
        )
        self.released = counter(
            "livedash_stage_released", "Claims handed back before they started", "stage"
        )
        self.lease_expired = counter(
            "livedash_stage_lease_expired",
            "Attempts of a vanished worker recorded as failed when this daemon took them over",
            "stage",
        )
        self.skipped = counter("livedash_stage_skipped", "Stages skipped (nothing to do)", "stage")
        self.duration = Histogram(
            "livedash_stage_duration_seconds",
            "From claim to stored outcome, per stage and outcome (completed, failed)",
            ["stage", "outcome"],
            registry=own,
            buckets=DURATION_BUCKETS,
        )
        self.in_flight = Gauge(
            "livedash_stage_in_flight", "Claims held: running or waiting in the pool", ["stage"],
            registry=own,
        )  # fmt: skip
        self.queued = Gauge(
            "livedash_stage_queued", "Due work known to this daemon, not yet claimed", ["stage"],
            registry=own,
        )  # fmt: skip
        self.llm_requests = counter(
            "livedash_llm_requests", "Model answers recorded (paid requests)", "model"
        )
        self.llm_tokens = counter(
            "livedash_llm_tokens", "Model tokens used, kind prompt or completion", "model", "kind"
        )
        self.llm_cost = counter(
            "livedash_llm_cost_eur", "Cost of model answers in EUR, where the price is known",
            "model",
        )  # fmt: skip
        self.llm_unpriced = counter(
            "livedash_llm_unpriced_requests", "Model answers whose price is unknown", "model"
        )
        self.rate_limit_wait = counter(
            "livedash_llm_rate_limit_wait_seconds",
            "Seconds completed attempts waited for a client-side rate-limit slot",
            "model",
        )
        self.turns = Histogram(
            "livedash_loop_turn_duration_seconds",
            "One turn of the daemon's loop (claim, gather, write), waits excluded",
            registry=own,
            buckets=TURN_BUCKETS,
        )
        for stage in WORKER_STAGES:  # each stage's series exists from the start, at 0
            for metric in (self.started, self.completed, self.released, self.lease_expired):
                metric.labels(stage.value)
        self._claimed: dict[Key, datetime] = {}

    def include(self, collector: Collector) -> None:
        """Serves another collector too (the installation's gauges), with the worker label."""
        self.registry.register(Labelled(collector, {"worker": self.worker}))

    # ------------------------------------------------------------ observer
    def stored(self, recordings: Sequence[Recording[UUID]]) -> None:
        for recording in recordings:
            self._count(recording.domain_event)

    def turn(self, seconds: float) -> None:
        self.turns.observe(seconds)

    def tick(self, snapshot: Mapping[str, Any]) -> None:
        queued = snapshot.get("queued", {})
        for stage, n in snapshot.get("in_flight", {}).items():  # every stage it works on
            self.in_flight.labels(stage).set(n)
            self.queued.labels(stage).set(queued.get(stage, 0))

    # ------------------------------------------------------------- events
    def _count(self, event: Any) -> None:
        if isinstance(event, Session.StageStarted):
            self.started.labels(event.stage.value).inc()
            self._remember((event.originator_id, event.stage, event.attempt), event.timestamp)
        elif isinstance(event, Session.StageCompleted):
            self._finished(event, "completed")
            self.completed.labels(event.stage.value).inc()
            self._waited(event.metadata)
        elif isinstance(event, Session.StageFailed):
            if event.error_type == LEASE_EXPIRED:
                self.lease_expired.labels(event.stage.value).inc()
                self._claimed.pop((event.originator_id, event.stage, event.attempt), None)
            else:
                self._finished(event, "failed")
                self.failed.labels(event.stage.value, event.error_type).inc()
        elif isinstance(event, Session.StageReleased):
            self._claimed.pop((event.originator_id, event.stage, event.attempt), None)
            self.released.labels(event.stage.value).inc()
        elif isinstance(event, Session.StageSkipped):
            self.skipped.labels(event.stage.value).inc()
        elif isinstance(event, Session.AIUsageRecorded):
            usage = event.usage
            model = usage.model_requested
            self.llm_requests.labels(model).inc()
            self.llm_tokens.labels(model, "prompt").inc(usage.prompt_tokens)
            self.llm_tokens.labels(model, "completion").inc(usage.completion_tokens)
            if usage.cost_eur is None:
                self.llm_unpriced.labels(model).inc()
            else:
                self.llm_cost.labels(model).inc(float(usage.cost_eur))

    def _remember(self, key: Key, at: datetime) -> None:
        if len(self._claimed) >= MAX_OPEN_CLAIMS:
            for old in list(islice(self._claimed, MAX_OPEN_CLAIMS // 10)):
                del self._claimed[old]
        self._claimed[key] = at

    def _finished(self, event: Any, outcome: str) -> None:
        began = self._claimed.pop((event.originator_id, event.stage, event.attempt), None)
        if began is not None:
            seconds = max(0.0, (event.timestamp - began).total_seconds())
            self.duration.labels(event.stage.value, outcome).observe(seconds)

    def _waited(self, metadata: Mapping[str, Any]) -> None:
        waited = metadata.get("rate_limit_wait_s")
        model = metadata.get("model_requested") or metadata.get("model")
        if waited and model:
            self.rate_limit_wait.labels(str(model)).inc(float(waited))
