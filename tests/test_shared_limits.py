"""Rate limits shared by a fleet through PostgreSQL: grants never overlap, several limiters
(daemons) together stay within one limit, the database is asked once per grant, and a 429
seen by one holds off all."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
from sqlalchemy import Engine, func, select

from domain.limits import Grant, Refused
from processors.ai.ratelimit import ModelLimits, RateLimiter, RateLimitWait
from projections.schema import shared_limits
from projections.shared_limits import SharedBuckets
from tests.harness import runtime


@contextmanager
def _engines(url: str, n: int) -> Iterator[list[Engine]]:
    """``n`` engines, each with its own pool: as many daemons."""
    with ExitStack() as stack:
        yield [stack.enter_context(runtime(url)).engine for _ in range(n)]


def _tat_from_now(engine: Engine, key: str) -> float:
    with engine.connect() as conn:
        value = conn.execute(
            select(func.extract("epoch", shared_limits.c.tat - func.now())).where(
                shared_limits.c.key == key
            )
        ).scalar_one()
    return float(value)


def test_concurrent_grants_tile_the_timeline_without_overlap(pg_url: str) -> None:
    rate, amount, takes = 10.0, 100.0, 12  # each grant is 10 s: the bucket stays ahead of now
    with _engines(pg_url, 3) as engines:
        buckets = [SharedBuckets(e) for e in engines]
        first = buckets[0].take("k", amount, rate, 0.0, 3600.0)
        assert isinstance(first, Grant) and first.end - first.start == pytest.approx(10.0)
        granted: list[Grant | Refused] = []
        lock = threading.Lock()

        def daemon(b: SharedBuckets) -> None:
            for _ in range(takes):
                got = b.take("k", amount, rate, 0.0, 3600.0)
                with lock:
                    granted.append(got)

        threads = [threading.Thread(target=daemon, args=(b,)) for b in buckets]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(isinstance(g, Grant) for g in granted)
        assert len(granted) == 3 * takes
        # 1 + 36 grants of 10 s each, end to end: the row is 370 s ahead of the first start
        # (less the little time that passed meanwhile), never less (no two grants overlap).
        ahead = _tat_from_now(engines[0], "k")
        assert 370.0 - 30.0 < ahead <= 370.0 + first.start + 0.5


def test_a_bucket_taken_beyond_the_horizon_refuses_and_says_when(pg_url: str) -> None:
    with _engines(pg_url, 1) as (engine,):
        bucket = SharedBuckets(engine)
        assert isinstance(bucket.take("k", 600.0, 10.0, 0.0, 5.0), Grant)  # 60 s ahead now
        refused = bucket.take("k", 10.0, 10.0, 0.0, 5.0)
        assert isinstance(refused, Refused)
        assert 50.0 < refused.retry_after <= 55.0
        assert _tat_from_now(engine, "k") <= 60.0, "a refusal takes nothing"


def _admit(limiter: RateLimiter, seconds: float, threads: int, times: list[float]) -> None:
    deadline = time.monotonic() + seconds
    lock = threading.Lock()

    def worker() -> None:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            asked = time.monotonic()
            try:
                admitted = limiter.acquire("gpt-test", 10, max_wait=left)
            except RateLimitWait:
                return
            with lock:  # the slot's time, not when a busy machine woke the thread
                times.append(asked + admitted.waited)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 30)


def test_three_daemons_together_stay_within_one_limit(pg_url: str) -> None:
    rpm = 1200  # 20 per second for the fleet
    with _engines(pg_url, 3) as engines:
        sources = [SharedBuckets(e) for e in engines]
        limiters = [
            RateLimiter(default=ModelLimits(requests_per_minute=rpm), shared=s) for s in sources
        ]
        times: list[float] = []
        runs = [threading.Thread(target=_admit, args=(lim, 3.0, 4, times)) for lim in limiters]
        for t in runs:
            t.start()
        for t in runs:
            t.join(60)
    times.sort()
    assert len(times) >= 10, "the limiters admitted almost nothing"
    # In any one-second window, at most 20 (+1: a window may hold both of its ends).
    j = 0
    for i, t in enumerate(times):
        while times[j] < t - 1.0:
            j += 1
        assert i - j + 1 <= 20 + 1, f"{i - j + 1} requests within one second"


def test_the_database_is_asked_once_per_grant_not_per_request(pg_url: str) -> None:
    """Admissions follow a clock that moves only to each slot, so no slot passes unused and
    the count of round trips is exact: 5,000 requests at 100/s in grants of 0.5 s."""
    now = [0.0]
    with _engines(pg_url, 1) as (engine,):
        source = SharedBuckets(engine)
        limiter = RateLimiter(
            default=ModelLimits(requests_per_minute=6000),
            shared=source,
            grant_seconds=0.5,
            clock=lambda: now[0],
        )
        bucket = limiter._state("gpt-test", 0.0).requests
        assert bucket is not None
        for _ in range(5000):
            at = bucket.earliest(now[0], 1, 3600.0)
            bucket.take(at, 1)
            now[0] = at
    assert source.round_trips == 5000 // 50


def test_a_429_seen_by_one_daemon_holds_off_the_others(pg_url: str) -> None:
    with _engines(pg_url, 2) as (a, b):
        limits = ModelLimits(requests_per_minute=600)
        one = RateLimiter(default=limits, shared=SharedBuckets(a))
        other = RateLimiter(default=limits, shared=SharedBuckets(b))
        one.acquire("gpt-test", 0)
        one.penalize("gpt-test", 30.0)
        with pytest.raises(RateLimitWait) as e:
            other.acquire("gpt-test", 0, max_wait=1.0)
        assert e.value.retry_after > 25.0


def test_sqlite_has_no_shared_buckets(sqlite_url: str) -> None:
    with runtime(sqlite_url) as rt, pytest.raises(ValueError, match="PostgreSQL"):
        SharedBuckets(rt.engine)
