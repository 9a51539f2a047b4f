"""The circuit breaker's rules, as a pure value object (no I/O, no clock of its own).

A stage that calls a provider (the LLM) stops calling it when most recent attempts failed for
reasons of the provider's (5xx, timeouts, connection errors), waits a cool-down, then lets one
probe through: a probe that succeeds closes the breaker, one that fails opens it again for twice
the cool-down (capped). The state lives in the pipeline's events (domain/pipeline.py) so that
every daemon of a fleet honours it; the window of recent attempts is each daemon's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Phase = Literal["closed", "open", "half_open"]

COUNTED_ERRORS = frozenset({"server_error", "timeout", "connection_error", "dns_error"})
"""Failures that say the provider is in trouble. A 4xx of bad input, a refusal or invalid
output says the provider answered: they neither count nor keep a breaker open."""


def counts_against_provider(error_type: str) -> bool:
    """A counted failure: one of `COUNTED_ERRORS`, or a transcript host's 5xx (``http_503``)."""
    if error_type in COUNTED_ERRORS:
        return True
    return error_type.startswith("http_5") and error_type[5:].isdigit()


class BreakerRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    window: int = Field(default=20, ge=1)
    """How many recent attempts the failure ratio is taken over."""
    ratio: float = Field(default=0.5, gt=0, le=1)
    """The breaker opens when at least this share of a full window failed."""
    cool_down: float = Field(default=30.0, gt=0)
    """Seconds the first opening lasts; each failed probe doubles it."""
    max_cool_down: float = Field(default=600.0, gt=0)
    probe_timeout: float = Field(default=330.0, gt=0)
    """A probe with no outcome after this long is presumed lost (its daemon died): another
    daemon may send one."""


class BreakerState(BaseModel):
    """What the events say about one breaker. Every transition returns a new state, or None
    when it does not apply (so the caller records nothing)."""

    model_config = ConfigDict(frozen=True)

    phase: Phase = "closed"
    cool_down: float = 0.0
    """Seconds of the current (or last) opening; 0 once closed."""
    reopens_at: datetime | None = None
    """While open: when a probe may go."""
    probe_by: str | None = None
    """While half-open: the daemon whose single probe is out."""
    probe_since: datetime | None = None
    since: datetime | None = None
    reason: str = ""

    @property
    def allows(self) -> bool:
        """True when any attempt may start (closed); a probe needs `probing`."""
        return self.phase == "closed"

    def probe_due(self, now: datetime, rules: BreakerRules) -> bool:
        if self.phase == "open":
            return self.reopens_at is None or now >= self.reopens_at
        if self.phase == "half_open":
            return self._probe_lost(now, rules)
        return False

    def _probe_lost(self, now: datetime, rules: BreakerRules) -> bool:
        since = self.probe_since or now
        return now - since >= timedelta(seconds=rules.probe_timeout)

    def opened(self, now: datetime, reason: str, rules: BreakerRules) -> BreakerState | None:
        """Too many failures (closed), or the probe failed (half-open: the cool-down doubles,
        up to the cap). An open breaker stays as it is."""
        if self.phase == "open":
            return None
        if self.phase == "closed":
            cool_down = min(rules.cool_down, rules.max_cool_down)
        else:
            cool_down = min(rules.max_cool_down, max(self.cool_down, rules.cool_down) * 2)
        return BreakerState(
            phase="open",
            cool_down=cool_down,
            reopens_at=now + timedelta(seconds=cool_down),
            since=now,
            reason=reason,
        )

    def probing(self, worker: str, now: datetime, rules: BreakerRules) -> BreakerState | None:
        """Half-open: ``worker`` may send one probe. Granted once the cool-down is over, and
        again only when the probe out is presumed lost."""
        if not self.probe_due(now, rules):
            return None
        return self.model_copy(
            update={
                "phase": "half_open",
                "probe_by": worker,
                "probe_since": now,
                "since": now,
                "reason": f"cool-down of {self.cool_down:g}s over: one probe by {worker}",
            }
        )

    def closed(self, now: datetime, reason: str) -> BreakerState | None:
        """The probe succeeded (the provider answered)."""
        if self.phase != "half_open":
            return None
        return BreakerState(phase="closed", since=now, reason=reason)

    def probe_returned(self, worker: str, now: datetime) -> BreakerState | None:
        """The probe's holder could not send it (its claim went back unstarted): open again,
        due at once, the cool-down unchanged."""
        if self.phase != "half_open" or self.probe_by != worker:
            return None
        return BreakerState(
            phase="open",
            cool_down=self.cool_down,
            reopens_at=now,
            since=now,
            reason=f"probe by {worker} not sent; another may go",
        )


@dataclass(frozen=True)
class RecentAttempts:
    """One daemon's window of the latest attempts' outcomes (True: a counted failure)."""

    failures: tuple[bool, ...] = ()

    def add(self, failed: bool, rules: BreakerRules) -> RecentAttempts:
        return RecentAttempts((*self.failures, failed)[-rules.window :])

    def tripped(self, rules: BreakerRules) -> bool:
        n = len(self.failures)
        return n >= rules.window and sum(self.failures) >= rules.ratio * n

    def describe(self) -> str:
        return f"{sum(self.failures)} of the last {len(self.failures)} attempts failed"
