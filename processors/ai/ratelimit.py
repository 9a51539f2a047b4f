"""Client-side rate limits per model: requests per minute and tokens per minute.

One `RateLimiter` is shared by every worker thread of the daemon, so the limits hold for the
process as a whole (the original's limiter did not limit at all: §14 item 19).

Each limit is a token bucket kept in its "virtual scheduling" form (GCRA): per bucket the
theoretical time at which it is empty again. A request reserves its slot in both buckets under the
lock and then sleeps, outside the lock, until that slot. Waiters therefore leave in arrival order,
nobody polls, and the admitted rate never exceeds the limit by more than the configured burst
(default: none, the requests are spaced evenly at ``60 / rpm`` seconds).

Tokens are not known before the answer, so a request reserves an estimate (prompt estimate plus
the output cap, as OpenAI counts it) and `settle` corrects the token bucket by the difference
once the usage is known. A single request larger than the bucket is admitted when the bucket is
full and leaves it in debt, so it cannot block forever.

`acquire` waits at most ``max_wait`` seconds (it refuses at once, without reserving, when the slot
is further away) and can be interrupted by a stop event; both raise `RateLimitWait`, which says
how long the caller should wait before trying again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelLimits:
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    burst_seconds: float = 0.0
    """Allowance for a burst above the steady rate, in seconds of that rate (0: evenly spaced)."""

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive (or None for no limit)")
        if self.burst_seconds < 0:
            raise ValueError("burst_seconds must not be negative")

    @property
    def unlimited(self) -> bool:
        return self.requests_per_minute is None and self.tokens_per_minute is None


class RateLimitWait(Exception):
    """The request was not admitted; ``retry_after`` is how long until it could be."""

    def __init__(self, model: str, retry_after: float, reason: str) -> None:
        super().__init__(f"{model}: {reason} (next slot in {retry_after:.1f}s)")
        self.model = model
        self.retry_after = retry_after
        self.reason = reason


class _Bucket:
    """GCRA state for one limit: ``tat`` is when the bucket would be empty again."""

    def __init__(self, per_minute: float, burst_seconds: float, now: float) -> None:
        self.rate = per_minute / 60.0  # units per second
        self.tolerance = burst_seconds
        self.tat = now

    def earliest(self, now: float) -> float:
        return max(now, self.tat - self.tolerance)

    def take(self, at: float, amount: float) -> None:
        self.tat = max(self.tat, at) + amount / self.rate

    def give_back(self, amount: float) -> None:
        self.tat -= amount / self.rate


@dataclass
class _ModelState:
    requests: _Bucket | None
    tokens: _Bucket | None


@dataclass(frozen=True)
class Admission:
    """What `acquire` granted: the caller settles ``tokens`` once the real usage is known."""

    model: str
    tokens: int
    waited: float


class RateLimiter:
    def __init__(
        self,
        limits: Mapping[str, ModelLimits] | None = None,
        default: ModelLimits | None = None,
        *,
        max_wait: float = 30.0,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``limits`` per requested model name; ``default`` for every other model."""
        self.limits = dict(limits or {})
        self.default = default or ModelLimits()
        self.max_wait = max_wait
        self.stop = stop or threading.Event()
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, _ModelState] = {}

    def limits_for(self, model: str) -> ModelLimits:
        return self.limits.get(model, self.default)

    def _state(self, model: str, now: float) -> _ModelState:
        state = self._states.get(model)
        if state is None:
            lim = self.limits_for(model)
            rpm, tpm = lim.requests_per_minute, lim.tokens_per_minute
            state = _ModelState(
                requests=_Bucket(rpm, lim.burst_seconds, now) if rpm else None,
                tokens=_Bucket(tpm, lim.burst_seconds, now) if tpm else None,
            )
            self._states[model] = state
        return state

    def acquire(
        self,
        model: str,
        tokens_estimate: int,
        *,
        max_wait: float | None = None,
        stop: threading.Event | None = None,
    ) -> Admission:
        """Blocks until one request of about ``tokens_estimate`` tokens may be sent."""
        limit_wait = self.max_wait if max_wait is None else max_wait
        stop_event = stop or self.stop
        if stop_event.is_set():
            raise RateLimitWait(model, 1.0, "stopping")
        tokens = max(0, int(tokens_estimate))
        with self._lock:
            now = self._clock()
            state = self._state(model, now)
            start = now
            if state.requests is not None:
                start = max(start, state.requests.earliest(now))
            if state.tokens is not None:
                start = max(start, state.tokens.earliest(now))
            wait = start - now
            if wait > limit_wait:
                raise RateLimitWait(model, wait, "client-side rate limit")
            if state.requests is not None:
                state.requests.take(start, 1)
            if state.tokens is not None:
                state.tokens.take(start, tokens)
        if wait > 0 and stop_event.wait(wait):
            with self._lock:
                if state.requests is not None:
                    state.requests.give_back(1)
                if state.tokens is not None:
                    state.tokens.give_back(tokens)
            raise RateLimitWait(model, 1.0, "stopping")
        return Admission(model, tokens, max(0.0, wait))

    def settle(self, model: str, estimate: int, actual: int) -> None:
        """Corrects the token bucket once the real token count of an admitted request is known."""
        with self._lock:
            state = self._states.get(model)
            if state is None or state.tokens is None or actual == estimate:
                return
            state.tokens.tat += (actual - estimate) / state.tokens.rate
            state.tokens.tat = max(state.tokens.tat, self._clock() - state.tokens.tolerance)

    def penalize(self, model: str, seconds: float) -> None:
        """The server said 429: nobody sends to this model for ``seconds``."""
        if seconds <= 0:
            return
        with self._lock:
            now = self._clock()
            state = self._state(model, now)
            for bucket in (state.requests, state.tokens):
                if bucket is not None:
                    bucket.tat = max(bucket.tat, now + seconds + bucket.tolerance)


def parse_limits(spec: str) -> tuple[dict[str, ModelLimits], ModelLimits]:
    """Limits from a setting such as ``*=600/150000,gpt-4o=500/30000``.

    Each item is ``model=RPM/TPM``; either number may be left empty (``gpt-4o=/30000``), ``*``
    names the default for every other model. Returns (per model, default).
    """
    per_model: dict[str, ModelLimits] = {}
    default = ModelLimits()
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        model, sep, numbers = item.partition("=")
        rpm_text, _, tpm_text = numbers.partition("/")
        if not sep or not model.strip():
            raise ValueError(f"bad rate limit {item!r}: use MODEL=RPM/TPM, e.g. gpt-4o=500/30000")
        try:
            limits = ModelLimits(
                float(rpm_text) if rpm_text.strip() else None,
                float(tpm_text) if tpm_text.strip() else None,
            )
        except ValueError as e:
            raise ValueError(f"bad rate limit {item!r}: {e}") from None
        if model.strip() == "*":
            default = limits
        else:
            per_model[model.strip()] = limits
    return per_model, default
