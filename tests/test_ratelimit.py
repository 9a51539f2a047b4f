"""The client-side rate limiter: limits hold under concurrency, waits are bounded and stoppable."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from processors.ai.ratelimit import ModelLimits, RateLimiter, RateLimitWait, parse_limits


def admit_for(limiter: RateLimiter, model: str, seconds: float, threads: int, tokens: int = 0):
    """Runs ``threads`` workers acquiring for ``seconds``; returns admission times (relative)."""
    start = time.monotonic()
    deadline = start + seconds
    times: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            try:
                limiter.acquire(model, tokens, max_wait=max(0.0, deadline - time.monotonic()))
            except RateLimitWait:
                return
            now = time.monotonic()
            if now >= deadline:
                return
            with lock:
                times.append(now - start)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 5)
    return sorted(times)


def test_requests_per_minute_hold_across_threads() -> None:
    limiter = RateLimiter({"m": ModelLimits(requests_per_minute=120)})
    times = admit_for(limiter, "m", 3.0, threads=8)
    # 120/min = one every 0.5 s: admitted at 0, 0.5, ..., 2.5 → 6 in three seconds
    assert len(times) in (6, 7)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.5 - 0.02


def test_a_burst_allowance_admits_that_many_at_once() -> None:
    limiter = RateLimiter({"m": ModelLimits(requests_per_minute=600, burst_seconds=0.5)})
    times = admit_for(limiter, "m", 1.0, threads=16)
    # 0.5 s of 10/s up front (5 + the first), then 10/s: about 16 in one second, never 20
    assert 14 <= len(times) <= 17
    assert sum(1 for t in times if t < 0.05) in (5, 6)


def test_tokens_per_minute_hold() -> None:
    limiter = RateLimiter({"m": ModelLimits(tokens_per_minute=6000)})  # 100 tokens/s
    times = admit_for(limiter, "m", 2.0, threads=4, tokens=50)
    assert len(times) in (4, 5)  # 50 tokens each: one every 0.5 s


def test_models_have_their_own_limits_and_the_default_applies_to_the_rest() -> None:
    limiter = RateLimiter(
        {"slow": ModelLimits(requests_per_minute=60)}, ModelLimits(requests_per_minute=6000)
    )
    limiter.acquire("slow", 0)
    with pytest.raises(RateLimitWait) as e:
        limiter.acquire("slow", 0, max_wait=0.1)
    assert 0.9 < e.value.retry_after <= 1.0
    started = time.monotonic()
    for _ in range(5):
        limiter.acquire("other", 0)
    assert time.monotonic() - started < 0.2  # 100/s: five take about 40 ms


def test_no_limits_never_wait() -> None:
    limiter = RateLimiter()
    started = time.monotonic()
    for _ in range(1000):
        assert limiter.acquire("m", 10_000).waited == 0
    assert time.monotonic() - started < 0.5


def test_settle_gives_back_what_was_not_used() -> None:
    limiter = RateLimiter({"m": ModelLimits(tokens_per_minute=60_000)})  # 1000/s
    limiter.acquire("m", 2000)  # reserves 2 s
    with pytest.raises(RateLimitWait):
        limiter.acquire("m", 10, max_wait=1.0)
    limiter.settle("m", 2000, 100)  # only 0.1 s was used
    admitted = limiter.acquire("m", 10, max_wait=1.0)
    assert admitted.waited < 0.15


def test_settle_charges_what_was_used_beyond_the_estimate() -> None:
    limiter = RateLimiter({"m": ModelLimits(tokens_per_minute=60_000)})
    limiter.acquire("m", 10)
    limiter.settle("m", 10, 3000)  # it really took 3 s worth
    with pytest.raises(RateLimitWait) as e:
        limiter.acquire("m", 10, max_wait=1.0)
    assert e.value.retry_after > 2.5


def test_refusal_reserves_nothing() -> None:
    limiter = RateLimiter({"m": ModelLimits(requests_per_minute=60)})
    limiter.acquire("m", 0)
    for _ in range(10):
        with pytest.raises(RateLimitWait):
            limiter.acquire("m", 0, max_wait=0.0)
    with pytest.raises(RateLimitWait) as e:
        limiter.acquire("m", 0, max_wait=0.0)
    assert e.value.retry_after <= 1.0  # the refused calls did not push the slot back


def test_a_stop_event_interrupts_a_wait_and_returns_the_slot() -> None:
    stop = threading.Event()
    limiter = RateLimiter({"m": ModelLimits(requests_per_minute=6)}, stop=stop)  # every 10 s
    limiter.acquire("m", 0)
    errors: list[RateLimitWait] = []

    def waiter() -> None:
        try:
            limiter.acquire("m", 0, max_wait=30)
        except RateLimitWait as e:
            errors.append(e)

    t = threading.Thread(target=waiter)
    started = time.monotonic()
    t.start()
    time.sleep(0.1)
    stop.set()
    t.join(2)
    assert not t.is_alive() and time.monotonic() - started < 1.0
    assert errors and errors[0].reason == "stopping"
    stop.clear()
    with pytest.raises(RateLimitWait) as e:
        limiter.acquire("m", 0, max_wait=0)
    assert e.value.retry_after <= 10.0  # the interrupted reservation was given back


def test_penalize_holds_everyone_back() -> None:
    limiter = RateLimiter({"m": ModelLimits(requests_per_minute=6000)})
    limiter.penalize("m", 0.3)
    started = time.monotonic()
    admitted = limiter.acquire("m", 0)
    assert 0.25 <= time.monotonic() - started < 0.6
    assert admitted.waited > 0.25


def test_parse_limits() -> None:
    per_model, default = parse_limits("*=600/150000, gpt-4o=500/30000,gpt-4o-mini=/200000")
    assert default == ModelLimits(600, 150000)
    assert per_model == {
        "gpt-4o": ModelLimits(500, 30000),
        "gpt-4o-mini": ModelLimits(None, 200000),
    }
    assert parse_limits("") == ({}, ModelLimits())
    for bad in ("gpt-4o", "gpt-4o=abc", "=5/5", "x=-1/"):
        with pytest.raises(ValueError, match="bad rate limit"):
            parse_limits(bad)
