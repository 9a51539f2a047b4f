"""Issue 18 §2's figure: requests sent to the model server during its outage, with the circuit
breaker on and off, while --sessions sessions wait for AI_ANALYSIS.

    .venv/bin/python scripts/bench_breaker.py                       # a 5-minute outage, both
    .venv/bin/python scripts/bench_breaker.py --outage-seconds 60   # a shorter run

For each mode a fresh SQLite database gets --sessions sessions (imported in-process, as
`livedash import` stores them; transcripts from a local server), then the real `livedash run`
starts against the OpenAI-compatible test server (tests/openai_server.py), which answers 503 to
every request for --outage-seconds from the daemon's start, then answers normally. Counted:
requests that arrived during the outage, sessions whose AI stage was given up (dead, retries
exhausted) at the end of the outage, and, after it, the seconds until every session is
analysed or dead (bounded by --settle-seconds). The breaker runs with the daemon's defaults
(`livedash run --help`: 50 % of 20, cool-down 30 s doubling to 600 s) unless told otherwise.
Each result is one JSON line, then a summary table.
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cli.runtime import Runtime  # noqa: E402
from domain.company import Company  # noqa: E402
from domain.pipeline import PIPELINE_ID, Pipeline  # noqa: E402
from processors.clock import utc_now  # noqa: E402
from processors.ingest.importer import import_rows  # noqa: E402
from projections.queries import status_report  # noqa: E402
from tests.factories import row  # noqa: E402
from tests.openai_server import ChatRequest, FakeOpenAI, Reply, ok, server_error  # noqa: E402
from tests.servers import RouteServer, text  # noqa: E402

LIVEDASH = [sys.executable, "-m", "cli.main"]
AI = "AI_ANALYSIS"
CHAT = (
    "[01.10.2026 10:00:05] User: Hallo, ik ben ziek. Wie moet ik bellen?\n"
    "[01.10.2026 10:00:09] Assistant: Meld je ziek bij je leidinggevende.\n"
)


class Outage:
    """The test server's script: 503 until ``ends`` (monotonic), then answers; counts both."""

    def __init__(self) -> None:
        self.ends = float("inf")
        self.during = 0
        self.after = 0
        self._lock = threading.Lock()

    def __call__(self, _request: ChatRequest) -> Reply:
        with self._lock:
            if time.monotonic() < self.ends:
                self.during += 1
                return server_error(503)
            self.after += 1
            return ok()


def ai_counts(rt: Runtime) -> tuple[int, int, int]:
    """(completed, dead, waiting) sessions of AI_ANALYSIS."""
    rt.runner.catch_up()
    with rt.engine.connect() as conn:
        report = status_report(conn)
    need = report.needs_processing[AI]
    done = report.stages[AI]["COMPLETED"]
    return done, need.failed_dead, need.pending + need.failed_retrying + need.in_progress


def breaker_events(rt: Runtime) -> list[str]:
    return [
        type(e).__name__
        for e in rt.app.events.get(PIPELINE_ID)
        if isinstance(e, Pipeline.BreakerChanged)
    ]


def run_mode(args: argparse.Namespace, breaker: bool, work: Path) -> dict[str, Any]:
    url = f"sqlite:///{work / ('on.db' if breaker else 'off.db')}"
    outage = Outage()
    with RouteServer() as chats, FakeOpenAI(outage, api_key="sk-bench") as llm:
        rt = Runtime.open(url, create=True)
        try:
            chats.routes["/t.txt"] = text(CHAT)
            company = rt.app.register_company(Company.register("Bench", "bench.csv", utc_now()))
            rows = (
                row(external_id=f"b-{i}", url=chats.url("/t.txt")) for i in range(args.sessions)
            )
            import_rows(rt.app, rt.runner, company, rows, "bench.csv", utc_now)
            env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
            env.update(
                PYTHONPATH=str(REPO),
                LIVEDASH_DATABASE_URL=url,
                OPENAI_API_KEY="sk-bench",
                OPENAI_BASE_URL=llm.base_url,
                LIVEDASH_AI_MODEL="gpt-4o-mini",
                LIVEDASH_FETCH_ALLOW_HOSTS="127.0.0.1",
            )
            cmd = [*LIVEDASH, "run", "--csv-interval", "0", "--concurrency", f"{AI}=8"]
            cmd += [] if breaker else ["--no-circuit-breaker"]
            cmd += args.run_args
            log = (work / f"daemon-{'on' if breaker else 'off'}.log").open("wb")
            daemon = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
            outage.ends = time.monotonic() + args.outage_seconds
            try:
                time.sleep(args.outage_seconds)
                _, dead_at_end, _ = ai_counts(rt)
                during = outage.during
                began = time.monotonic()
                settled = None
                while time.monotonic() - began < args.settle_seconds:
                    done, dead, waiting = ai_counts(rt)
                    if waiting == 0:
                        settled = round(time.monotonic() - began, 1)
                        break
                    time.sleep(0.5)
                done, dead, waiting = ai_counts(rt)
                events = breaker_events(rt)
            finally:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(timeout=120)
                log.close()
        finally:
            rt.close()
    return {
        "figure": "requests_during_outage",
        "circuit_breaker": "on" if breaker else "off",
        "sessions": args.sessions,
        "outage_seconds": args.outage_seconds,
        "requests_during_outage": during,
        "requests_after": outage.after,
        "dead_at_outage_end": dead_at_end,
        "analysed": done,
        "dead": dead,
        "still_waiting": waiting,
        "seconds_to_settle_after_outage": settled,
        "breaker_events": {k: events.count(k) for k in sorted(set(events))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--outage-seconds", type=float, default=300.0)
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=720.0,
        help="After the outage, how long to wait for every session to be analysed or dead",
    )
    parser.add_argument("--modes", default="on,off", help="on, off or both (on,off)")
    parser.add_argument(
        "run_args",
        nargs="*",
        help="More `livedash run` options, after --, e.g. -- --breaker-cool-down 10",
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-breaker-") as tmp:
        for mode in args.modes.split(","):
            result = run_mode(args, mode.strip() == "on", Path(tmp))
            print(json.dumps(result), flush=True)
            results.append(result)
    print(f"\n{'breaker':8} {'requests in outage':>19} {'dead at end':>12} {'settle s':>9}")
    for r in results:
        print(
            f"{r['circuit_breaker']:8} {r['requests_during_outage']:>19} "
            f"{r['dead_at_outage_end']:>12} {r['seconds_to_settle_after_outage']!s:>9}"
        )


if __name__ == "__main__":
    main()
