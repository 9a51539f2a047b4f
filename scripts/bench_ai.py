"""AI_ANALYSIS throughput against the fake OpenAI server (tests/openai_server.py).

    .venv/bin/python scripts/bench_ai.py            # 30 s limited run + 960 unlimited sessions
    .venv/bin/python scripts/bench_ai.py --quick    # 10 s + 320 sessions

The same measurement runs as the "ai" bench of scripts/bench.py (median of several runs,
written to bench-results.json); this script is the stand-alone, single-run version.

(a) limited: a shared RateLimiter at --rpm (600) requests/min, --threads (32) workers calling
    OpenAIAnalyser for --duration seconds; prints requests/min achieved and % of the limit.
(b) unlimited: --threads workers over --sessions sessions; prints sessions/s.

The server answers every request after --latency (0.3) seconds, through the real `openai`
client, with the same validation, usage recording and pricing as production. Target:
(a) ≥ 95 % of the limit, (b) ≥ 80 sessions/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.payloads import AIUsage
from domain.transcript import Message
from processors.ai.config import OpenAIAnalyserConfig
from processors.ai.openai_client import OpenAIAnalyser
from processors.ai.ratelimit import ModelLimits, RateLimiter
from processors.stages.analysis import AnalysisInputs
from processors.stages.base import WorkContext
from tests.openai_server import FakeOpenAI

MODEL = "gpt-4o-mini"
LINES = [
    "Hoi, ik ben ziek. Wie moet ik bellen?",
    "Wat vervelend! Meld je ziek bij je leidinggevende via de app.",
    "Moet ik een doktersbriefje hebben?",
    "Nee, pas vanaf de derde ziektedag. Beterschap!",
    "Hoeveel vakantiedagen heb ik nog dit jaar?",
    "Dat zie je in het personeelsportaal onder Verlof.",
]


def session(i: int) -> list[Message]:
    base = datetime(2025, 5, 14, 9, 0, tzinfo=UTC)
    count = 6 + i % 20
    return [
        Message(
            order=n,
            role="user" if n % 2 == 0 else "assistant",
            speaker="User" if n % 2 == 0 else "Assistant",
            timestamp=None if n % 7 == 6 else base + timedelta(seconds=17 * n),
            content=LINES[(i + n) % len(LINES)],
            line=n + 1,
        )
        for n in range(count)
    ]


class Usages:
    def __init__(self) -> None:
        self.items: list[AIUsage] = []
        self.lock = threading.Lock()

    def record(self, usage: AIUsage) -> None:
        with self.lock:
            self.items.append(usage)


def limited(base_url: str, rpm: float, threads: int, duration: float) -> dict[str, float]:
    limiter = RateLimiter({MODEL: ModelLimits(requests_per_minute=rpm)})
    analyser = OpenAIAnalyser(
        OpenAIAnalyserConfig(
            api_key="bench", base_url=base_url, limiter=limiter, rate_limit_max_wait=60.0
        )
    )
    usages = Usages()
    ctx = WorkContext(record_usage=usages.record)
    started = time.monotonic()
    deadline = started + duration
    done: list[float] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        i = w
        while time.monotonic() < deadline:
            analyser(AnalysisInputs(uuid.uuid4(), session(i), MODEL), ctx)
            with lock:
                done.append(time.monotonic() - started)
            i += threads

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    elapsed = time.monotonic() - started
    analyser.close()
    per_minute = len(done) / elapsed * 60
    # steady rate between the first and the last request that started inside the window
    sent = [u.requested_at for u in usages.items]
    span = (max(sent) - min(sent)).total_seconds()
    steady = (len(sent) - 1) / span * 60 if span > 0 else 0.0
    return {
        "limit_rpm": rpm,
        "requests": len(done),
        "elapsed_s": round(elapsed, 2),
        "achieved_rpm": round(per_minute, 1),
        "percent_of_limit": round(100 * per_minute / rpm, 1),
        "steady_rpm": round(steady, 1),
        "usages_recorded": len(usages.items),
    }


def unlimited(
    base_url: str, threads: int, sessions: int, latency: float | None = None
) -> dict[str, float]:
    analyser = OpenAIAnalyser(OpenAIAnalyserConfig(api_key="bench", base_url=base_url))
    usages = Usages()
    ctx = WorkContext(record_usage=usages.record)
    work = [session(i) for i in range(sessions)]
    # one warm-up round opens the connections, as a running daemon would have them
    with ThreadPoolExecutor(threads) as pool:
        list(
            pool.map(
                lambda m: analyser(AnalysisInputs(uuid.uuid4(), m, MODEL), ctx), work[:threads]
            )
        )
    usages.items.clear()
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        outs = list(pool.map(lambda m: analyser(AnalysisInputs(uuid.uuid4(), m, MODEL), ctx), work))
    elapsed = time.monotonic() - started
    analyser.close()
    return {
        "threads": threads,
        "sessions": len(outs),
        "elapsed_s": round(elapsed, 2),
        "sessions_per_s": round(len(outs) / elapsed, 1),
        "ceiling_per_s": round(threads / (latency or LATENCY), 1),
        "usages_recorded": len(usages.items),
    }


LATENCY = 0.3


def main() -> int:
    global LATENCY
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--latency", type=float, default=0.3)
    p.add_argument("--rpm", type=float, default=600)
    p.add_argument("--threads", type=int, default=32)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--sessions", type=int, default=960)
    p.add_argument("--quick", action="store_true", help="10 s limited, 320 sessions unlimited")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.duration, args.sessions = 10.0, 320
    LATENCY = args.latency
    with FakeOpenAI(latency=args.latency) as server:
        a = limited(server.base_url, args.rpm, args.threads, args.duration)
        paid_a = server.paid
        b = unlimited(server.base_url, args.threads, args.sessions, args.latency)
        server.wait_idle()
        paid_total = server.paid
    ok_a = a["percent_of_limit"] >= 95 and a["achieved_rpm"] <= args.rpm * 1.01 + 60 / args.duration
    ok_b = b["sessions_per_s"] >= 80
    result = {
        "latency_s": args.latency,
        "limited": a,
        "unlimited": b,
        "server_paid_responses": paid_total,
        "paid_equals_recorded_limited": paid_a == a["usages_recorded"],
        "targets_met": {"limited_95pct": ok_a, "unlimited_80_per_s": ok_b},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"server latency {args.latency * 1000:.0f} ms, {args.threads} threads")
        print(
            f"(a) limited to {args.rpm:.0f}/min: {a['requests']} requests in {a['elapsed_s']} s"
            f" = {a['achieved_rpm']}/min ({a['percent_of_limit']}% of the limit;"
            f" steady {a['steady_rpm']}/min) {'OK' if ok_a else 'BELOW TARGET'}"
        )
        print(
            f"(b) unlimited: {b['sessions']} sessions in {b['elapsed_s']} s"
            f" = {b['sessions_per_s']} sessions/s (ceiling {b['ceiling_per_s']}/s)"
            f" {'OK' if ok_b else 'BELOW TARGET'}"
        )
        print(f"paid responses == usages recorded (a): {result['paid_equals_recorded_limited']}")
    return 0 if ok_a and ok_b else 1


if __name__ == "__main__":
    raise SystemExit(main())
