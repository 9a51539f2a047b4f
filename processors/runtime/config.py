"""How the daemon runs: per stage (concurrency, timeout, lease, retries) and as a whole."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.breaker import BreakerRules
from domain.budget import AIBudget
from domain.stages import WORKER_STAGES, Stage
from processors.runtime.retry import RetryPolicy

LEASE_MARGIN = 2.0
"""Queued work whose lease has less than this left (its heartbeat failed) is not started."""


@dataclass(frozen=True)
class StageConfig:
    concurrency: int = 8
    timeout: float = 60.0
    """How long one attempt may run (a model call, a download) before it is given up."""
    lease_seconds: float = 30.0
    """How long a claim holds without a heartbeat: a dead daemon's work is taken over after
    about this long. Live work renews it every third of it, however long it runs."""
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    queue_depth: int = 32
    """Claimed work that may wait in the pool's queue beyond the running slots. Deep queues
    make a fast stage's turns bigger (and its per-session cost smaller); the heartbeat keeps
    queued claims alive, and a stop hands them back unstarted."""

    @property
    def max_in_flight(self) -> int:
        """Running plus queued claims: a fast stage (parsing takes a millisecond) must not
        wait a whole loop turn for its next batch, so at least `queue_depth` wait in line."""
        return self.concurrency + max(self.concurrency, self.queue_depth)

    @property
    def heartbeat(self) -> float:
        return self.lease_seconds / 3

    @property
    def lease_margin(self) -> float:
        return min(LEASE_MARGIN, self.lease_seconds / 4)

    def __post_init__(self) -> None:
        if self.lease_seconds < 1:
            raise ValueError("a lease must be at least 1s")


@dataclass
class DaemonConfig:
    worker_id: str
    stages: tuple[Stage, ...] = WORKER_STAGES
    stage_configs: dict[Stage, StageConfig] = field(default_factory=dict)
    level_interval: float = 5.0
    poll_interval: float = 1.0
    batch_window: float = 0.01
    """After a wake-up, wait this long for more outcomes, so one transaction carries many."""
    other_projections_interval: float = 1.0
    """The reports' projections are kept up every this often; the status one every turn, or
    one turn late while only this daemon writes (``projection_defer``)."""
    claim_batch: int = 500
    company_fairness: bool = True
    """The companies take turns for free slots (due work is asked per company, and a stage's
    completion starts the session's next stage at once only while no other company's work
    waits for it); off, work is taken oldest first whatever its company (`run --fairness
    fifo`)."""
    until_idle: bool = False
    idle_horizon: float = 60.0
    grace_seconds: float = 30.0
    tune_gc: bool = True
    """Collect garbage less often while running (see processors/runtime/heap.py)."""
    projection_defer: int = 1
    """Turns the status projection may wait with this daemon's own events while no one else
    writes (see projections/local_feed.py)."""
    intent_wait: float = 30.0
    """How long a worker waits for its request's intent to be stored before it gives up the
    request unsent."""
    usage_wait: float = 10.0
    """How long a worker waits for its paid answer to be stored before it goes on; the answer
    stays with the daemon, which stores it as soon as the database allows."""
    fleet_heartbeat: float = 2.0
    """How often the daemon renews its row in the fleet's register and its partitions."""
    reconnect_max: float = 10.0
    """Longest pause between tries while the database is away."""
    outage_log_interval: float = 30.0
    installation_budget: AIBudget | None = None
    """LIVEDASH_AI_BUDGET: a cap on the whole installation's AI spend per period."""
    circuit_breaker: BreakerRules | None = field(default_factory=BreakerRules)
    """The breakers' rules (runtime/pauses.py); None: off (`run --no-circuit-breaker`)."""
    providers: dict[Stage, str] = field(default_factory=dict)
    """The provider each stage with a breaker calls, as its events name it; no entry: the
    stage has no breaker."""

    def for_stage(self, stage: Stage) -> StageConfig:
        return self.stage_configs.get(stage) or StageConfig()
