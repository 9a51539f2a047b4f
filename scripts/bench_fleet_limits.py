"""The fleet's rate limit, measured at the provider: N `livedash run` processes on one
PostgreSQL under `LIVEDASH_AI_RATE_LIMITS=*=RPM/TPM` against the fake OpenAI server.

    .venv/bin/python scripts/bench_fleet_limits.py                 # 3 daemons, 600/min, 180 s
    .venv/bin/python scripts/bench_fleet_limits.py --quick         # 3 daemons, 600/min, 40 s

Prints JSON: the most requests the server saw in any 60 s window (must be <= the limit), the
use of the limit over the steady part of the run (target >= 95 %), and, as the same-run
reference, what one daemon alone reaches under the same limit. Then the cost of sharing: the
database round trips per request and the time one grant takes, from an in-process run of
the limiter (several limiters, each with its own connection pool, like daemons).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib
from bench_pipeline import REPO, _import_company
from benchlib import TranscriptServer

from cli.runtime import Runtime
from tests.openai_server import ChatRequest, FakeOpenAI, Reply, ok


class Arrivals:
    """Answers every request and keeps the time it arrived."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, request: ChatRequest) -> Reply:
        with self._lock:
            self.times.append(time.monotonic())
        return ok()


def max_in_window(times: list[float], window: float) -> int:
    ordered, best, j = sorted(times), 0, 0
    for i, t in enumerate(ordered):
        while ordered[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def _env(url: str, ai: FakeOpenAI, limits: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEDASH_", "OPENAI_"))}
    env.update(
        LIVEDASH_DATABASE_URL=url,
        LIVEDASH_FETCH_ALLOW_HOSTS="127.0.0.1",
        LIVEDASH_AI_PROVIDER="openai",
        OPENAI_API_KEY="sk-bench",
        OPENAI_BASE_URL=ai.base_url,
        LIVEDASH_AI_RATE_LIMITS=limits,
        PYTHONPATH=str(REPO),
    )
    return env


def _run(env: dict[str, str], tmp: str, *args: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "cli.main", "run", "--csv-interval", "0", *args]
    logs = Path(os.environ.get("BENCH_LOG_DIR") or tmp)
    log = open(logs / f"daemon-{time.monotonic_ns()}.log", "w", encoding="utf-8")  # noqa: SIM115
    return subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=log)


def fleet(daemons: int, rpm: int, seconds: float, warmup: float) -> dict[str, Any]:
    """``daemons`` processes on AI_ANALYSIS for ``seconds``, with work for all of them."""
    sessions = int(rpm / 60 * (seconds + warmup) * 1.3) + 50
    arrivals = Arrivals()
    with (
        tempfile.TemporaryDirectory(prefix="bench-fleet-limits-") as tmp,
        TranscriptServer() as transcripts,
        FakeOpenAI(arrivals, latency=0.05) as ai,
        benchlib.pg_database() as url,
    ):
        with Runtime.open(url, create=True) as rt:
            _import_company(rt, tmp, sessions, transcripts.url)
        env = _env(url, ai, f"*={rpm}/1000000")
        prep = _run(env, tmp, "--until-idle", "--idle-horizon", "0",
                    "--stages", "TRANSCRIPT_FETCH,SESSION_CREATION")  # fmt: skip
        if prep.wait() != 0:
            raise SystemExit("preparing the sessions failed")
        started = time.monotonic()
        ai_only = ("--stages", "AI_ANALYSIS", "--concurrency", "AI_ANALYSIS=8", "--grace", "5")
        procs = [_run(env, tmp, *ai_only) for _ in range(daemons)]
        time.sleep(warmup + seconds)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
    steady = [t for t in arrivals.times if started + warmup <= t < started + warmup + seconds]
    allowed = rpm / 60 * seconds
    return {
        "daemons": daemons,
        "limit_per_min": rpm,
        "seconds": seconds,
        "requests": len(arrivals.times),
        "max_in_any_60s": max_in_window(arrivals.times, 60.0),
        "max_in_any_10s": max_in_window(arrivals.times, 10.0),
        "steady_requests": len(steady),
        "use_of_limit": round(len(steady) / allowed, 4),
    }


def sharing_cost(rpm: int, seconds: float, limiters: int) -> dict[str, Any]:
    """Round trips per request and time per grant of the shared buckets, in process."""
    from processors.ai.ratelimit import ModelLimits, RateLimiter, RateLimitWait
    from projections.shared_limits import SharedBuckets

    with benchlib.pg_database() as url:
        runtimes = [Runtime.open(url, create=i == 0) for i in range(limiters)]
        try:
            sources = [SharedBuckets(rt.engine) for rt in runtimes]
            admitted = [0] * limiters
            grant_times: list[float] = []
            deadline = time.monotonic() + seconds

            def worker(i: int, limiter: RateLimiter) -> None:
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        limiter.acquire("bench", 100, max_wait=left)
                    except RateLimitWait:
                        return
                    admitted[i] += 1

            for source in sources:  # time of one grant, measured on its own
                for _ in range(20):
                    t0 = time.perf_counter()
                    source.take("timing", 1, 1000.0, 0.0, 3600.0)
                    grant_times.append((time.perf_counter() - t0) * 1000)
            limits = ModelLimits(requests_per_minute=rpm)
            threads = [
                threading.Thread(target=worker, args=(i, RateLimiter(default=limits, shared=s)))
                for i, s in enumerate(sources)
                for _ in range(8)
            ]
            trips_before = sum(s.round_trips for s in sources)
            for t in threads:
                t.start()
            for t in threads:
                t.join(seconds + 30)
            trips = sum(s.round_trips for s in sources) - trips_before
        finally:
            for rt in runtimes:
                rt.close()
    total = sum(admitted)
    return {
        "limiters": limiters,
        "limit_per_min": rpm,
        "admitted": total,
        "use_of_limit": round(total / (rpm / 60 * seconds), 4),
        "db_round_trips": trips,
        "round_trips_per_request": round(trips / max(1, total), 4),
        "grant_ms": benchlib.stats(grant_times),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--daemons", type=int, default=3)
    p.add_argument("--rpm", type=int, default=600)
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--quick", action="store_true", help="40 s windows instead of 180 s")
    p.add_argument("--out", type=Path, default=REPO / "bench-results.json")
    args = p.parse_args()
    seconds = 40.0 if args.quick else args.seconds
    result = {
        "machine": benchlib.machine(),
        "fleet": fleet(args.daemons, args.rpm, seconds, warmup=5.0),
        "one_daemon_reference": fleet(1, args.rpm, min(seconds, 60.0), warmup=5.0),
        "sharing_cost": sharing_cost(6000, 10.0, args.daemons),
    }
    print(json.dumps(result, indent=2))
    merged: dict[str, Any] = {}
    if args.out.exists():
        merged = json.loads(args.out.read_text(encoding="utf-8"))
    merged["fleet_rate_limit"] = result
    args.out.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
