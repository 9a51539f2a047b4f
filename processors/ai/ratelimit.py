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

With a `GrantSource` (PostgreSQL, projections/shared_limits.py) the buckets are the fleet's:
each model's limits are one row per kind that every daemon draws from, a stretch of about
``grant_seconds`` of the rate at a time, so the database is asked about once a second per busy
daemon, not per request. Requests inside a stretch are spaced as locally; stretches of
different daemons never overlap, so the fleet's requests per minute are exact (no burst
allowance); its tokens may run ahead by one grant per daemon (see `_SharedBucket`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from domain.limits import Grant, Refused


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


class GrantSource(Protocol):
    """Where a fleet's shared buckets live (times in seconds from the source's now)."""

    def take(
        self, key: str, amount: float, rate: float, tolerance: float, horizon: float
    ) -> Grant | Refused: ...

    def hold_off(self, key: str, seconds: float) -> None: ...


class _Bucket:
    """GCRA state for one limit: ``tat`` is when the bucket would be empty again."""

    def __init__(self, per_minute: float, burst_seconds: float, now: float) -> None:
        self.rate = per_minute / 60.0  # units per second
        self.tolerance = burst_seconds
        self.tat = now

    def earliest(self, now: float, amount: float, horizon: float = 0.0) -> float:
        return max(now, self.tat - self.tolerance)

    def take(self, at: float, amount: float) -> None:
        self.tat = max(self.tat, at) + amount / self.rate

    def give_back(self, amount: float) -> None:
        self.tat -= amount / self.rate

    def settle(self, amount: float, now: float) -> None:
        self.tat = max(self.tat + amount / self.rate, now - self.tolerance)

    def hold_off(self, until: float) -> None:
        self.tat = max(self.tat, until + self.tolerance)


class _SharedBucket:
    """One limit of the fleet: spends stretches of the shared timeline that the source
    granted to this process; ``cursor`` is the local GCRA time within them, and a cursor past
    ``end`` is a debt (a settled underestimate) paid from the next stretch.

    ``tolerance``: how far ahead of its place on the timeline a request may be admitted. The
    request bucket has none, so the fleet's requests are exact. The token bucket has one
    grant's length: otherwise every new token stretch (placed after the other daemons') would
    push the request past slots of its request stretch, which are then lost - measured, 3
    daemons used 90 % of 600/min with a strict token bucket, 96 % without a token limit. The
    fleet's tokens may so exceed the limit by at most one grant per daemon."""

    def __init__(
        self,
        source: GrantSource,
        key: str,
        per_minute: float,
        grant_seconds: float,
        clock: Callable[[], float],
        model: str,
        tolerance: float = 0.0,
    ) -> None:
        self.source = source
        self.key = key
        self.tolerance = tolerance
        self.rate = per_minute / 60.0
        self.grant = max(1.0, round(self.rate * grant_seconds))
        self.clock = clock
        self.model = model
        self.cursor = float("-inf")
        self.end = float("-inf")

    def earliest(self, now: float, amount: float, horizon: float = 0.0) -> float:
        """The first time at or after ``now`` at which ``amount`` may go: its place in a granted
        stretch, less the tolerance; takes a new stretch when the present one cannot hold it."""
        need = amount / self.rate
        start = max(self.cursor, now)
        if start + need <= self.end + 1e-9:
            return max(now, start - self.tolerance)
        debt = max(0.0, self.cursor - self.end) if self.end > float("-inf") else 0.0
        try:
            got = self.source.take(
                self.key, max(self.grant, amount) + debt * self.rate, self.rate, 0.0, horizon
            )
        except Exception as e:
            raise RateLimitWait(self.model, 1.0, f"shared rate limit unavailable: {e}") from e
        base = self.clock()
        if isinstance(got, Refused):
            raise RateLimitWait(self.model, got.retry_after, "fleet-wide rate limit")
        granted_start, granted_end = base + got.start, base + got.end
        if abs(granted_start - self.end) > 0.005:  # not contiguous: the rest of ours is lost
            self.cursor = max(granted_start + debt, now)
        self.end = granted_end
        return max(now, self.cursor - self.tolerance)

    def take(self, at: float, amount: float) -> None:
        self.cursor = max(self.cursor, at) + amount / self.rate

    def give_back(self, amount: float) -> None:
        self.cursor -= amount / self.rate

    def settle(self, amount: float, now: float) -> None:
        self.cursor = max(self.cursor + amount / self.rate, now)

    def hold_off(self, until: float) -> None:
        self.cursor = max(self.cursor, until)
        seconds = until - self.clock()
        # When the database is away the local hold still applies; the others learn by a 429.
        if seconds > 0:
            with contextlib.suppress(Exception):
                self.source.hold_off(self.key, seconds)


@dataclass
class _ModelState:
    requests: _Bucket | _SharedBucket | None
    tokens: _Bucket | _SharedBucket | None

    def buckets(self) -> list[_Bucket | _SharedBucket]:
        return [b for b in (self.requests, self.tokens) if b is not None]


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
        shared: GrantSource | None = None,
        grant_seconds: float = 0.5,
    ) -> None:
        """``limits`` per requested model name; ``default`` for every other model; ``shared``:
        the fleet's buckets, taken ``grant_seconds`` of the rate at a time."""
        self.limits = dict(limits or {})
        self.default = default or ModelLimits()
        self.max_wait = max_wait
        self.stop = stop or threading.Event()
        self.shared = shared
        self.grant_seconds = grant_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, _ModelState] = {}

    def limits_for(self, model: str) -> ModelLimits:
        return self.limits.get(model, self.default)

    def _bucket(
        self, model: str, kind: str, per_minute: float | None, burst: float, now: float
    ) -> _Bucket | _SharedBucket | None:
        if not per_minute:
            return None
        if self.shared is None:
            return _Bucket(per_minute, burst, now)
        key = f"rate:{model}:{kind}"
        tolerance = self.grant_seconds if kind == "tokens" else 0.0
        return _SharedBucket(
            self.shared, key, per_minute, self.grant_seconds, self._clock, model, tolerance
        )

    def _state(self, model: str, now: float) -> _ModelState:
        state = self._states.get(model)
        if state is None:
            lim = self.limits_for(model)
            burst = lim.burst_seconds
            state = _ModelState(
                requests=self._bucket(model, "requests", lim.requests_per_minute, burst, now),
                tokens=self._bucket(model, "tokens", lim.tokens_per_minute, burst, now),
            )
            self._states[model] = state
        return state

    def _admission(self, state: _ModelState, now: float, tokens: int, horizon: float) -> float:
        """The first time every bucket has room: asked again from the latest answer until
        all agree (a shared bucket may have had to take a new stretch further on)."""
        amounts = {id(state.requests): 1, id(state.tokens): tokens}
        start = now
        for _ in range(4):
            latest = max(
                (b.earliest(start, amounts[id(b)], horizon) for b in state.buckets()),
                default=start,
            )
            if latest <= start:
                break
            start = latest
        return start

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
            start = self._admission(state, now, tokens, limit_wait)
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
            state.tokens.settle(actual - estimate, self._clock())

    def penalize(self, model: str, seconds: float) -> None:
        """The server said 429: nobody sends to this model for ``seconds`` (nobody in the
        fleet, with shared buckets)."""
        if seconds <= 0:
            return
        with self._lock:
            now = self._clock()
            for bucket in self._state(model, now).buckets():
                bucket.hold_off(now + seconds)


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
