"""CSV → SESSION_CREATION with P real `livedash run` processes on one database.

    python scripts/bench_daemons.py --processes 2 --sessions 5000

One daemon is one interpreter; this measures how far several go on this machine (they share
the backlog through optimistic claims, so some claims are lost races, reported per daemon).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib
from bench_pipeline import REPO, _import_company, _timeline
from benchlib import TranscriptServer, database

from cli.runtime import Runtime


def run(kind: str, sessions: int, processes: int, concurrency: str) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-daemons-") as tmp,
        TranscriptServer() as server,
        database(kind, tmp) as url,
    ):
        with Runtime.open(url, create=True) as rt:
            _import_company(rt, tmp, sessions, server.url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
        env.update(
            LIVEDASH_DATABASE_URL=url,
            LIVEDASH_FETCH_ALLOW_HOSTS="127.0.0.1",
            PYTHONPATH=str(REPO),
        )
        cmd = [
            sys.executable, "-m", "cli.main", "run", "--until-idle", "--idle-horizon", "0",
            "--csv-interval", "0", "--stages", "TRANSCRIPT_FETCH,SESSION_CREATION",
            "--concurrency", concurrency,
        ]  # fmt: skip
        logs = [Path(tmp) / f"daemon-{i}.log" for i in range(processes)]
        started = time.perf_counter()
        procs = []
        for log in logs:
            with open(log, "w", encoding="utf-8") as out:
                procs.append(
                    subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=out)
                )
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - started
        with Runtime.open(url) as rt:
            timeline = _timeline(rt)
        done = [m for m in timeline if "SESSION_CREATION.completed" in m]
        first = min(m["TRANSCRIPT_FETCH.started"] for m in timeline)
        last = max(m["SESSION_CREATION.completed"] for m in done)
        rate = sessions / (last - first).total_seconds()
        print(
            f"{kind}: {processes} daemon(s), {len(done)}/{sessions} sessions created, "
            f"{rate:.0f} sessions/s (first fetch start → last creation), "
            f"processes ran {wall:.1f} s, exit codes {codes}"
        )
        for i, log in enumerate(logs):
            for line in reversed(log.read_text(encoding="utf-8").splitlines()):
                if line.startswith("{") and json.loads(line).get("event") == "stopped":
                    stop = json.loads(line)
                    print(
                        f"  daemon {i}: completed {stop['completed']}, lost races "
                        f"{stop['lost_races']}, peak RSS {stop.get('peak_rss_mb')} MB"
                    )
                    break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--concurrency", default="TRANSCRIPT_FETCH=32,SESSION_CREATION=4", help="per daemon"
    )
    parser.add_argument("--postgres-url", default=benchlib.PG_ADMIN, help="server to create DBs on")
    args = parser.parse_args()
    benchlib.PG_ADMIN = args.postgres_url
    run(args.database, args.sessions, args.processes, args.concurrency)


if __name__ == "__main__":
    main()
