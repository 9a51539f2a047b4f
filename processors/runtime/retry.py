"""Retry policy: a small value object, so every stage's backoff is stated in one place."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    """Failures allowed in a row before the stage is given up (dead) until an operator resets it."""
    base_delay: float = 2.0
    factor: float = 2.0
    max_delay: float = 600.0
    jitter: float = 0.25
    """Up to this fraction of the delay is added at random, so retries of a burst spread out."""

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the ``failures``-th failure (1-based)."""
        raw = min(self.max_delay, self.base_delay * self.factor ** max(0, failures - 1))
        spread = (rng or random).random() * self.jitter * raw
        return min(self.max_delay, raw + spread)

    def retry_at(
        self,
        failures: int,
        now: datetime,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> datetime | None:
        """When to try again after ``failures`` failures, or None when the stage is given up.

        A server's Retry-After wins when it asks for longer than our own backoff.
        """
        if failures >= self.max_attempts:
            return None
        wait = self.delay(failures, rng)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay * 4))
        return now + timedelta(seconds=wait)
