"""What the log's hash chain costs (projections/chain.py).

    .venv/bin/python scripts/bench_chain.py                      # 2,000 sessions, 3 runs each
    .venv/bin/python scripts/bench_chain.py --sessions 300 --runs 1 --kinds sqlite

Two figures per database, each beside its same-run reference:
- pipeline: CSV → SESSION_CREATION through the real daemon with its chain keeper linking
  every 0.5 s (ten times as often as the default, so the cost shows) against the same daemon
  without it, alternating runs; the ratio is the throughput kept.
- linking: events linked per second by `extend` on a whole-pipeline log, against the rate at
  which the same log is read raw (no hashing) and the rate at which it was written.
Import is not in the list: importing writes no link (the daemon links behind it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib
from bench_pipeline import REPO, _daemon, _import_company, _timeline
from benchlib import TranscriptServer, database, full_pipeline_log, stats

from cli.runtime import Runtime, log_reader
from projections.chain import ChainKeeper, LogReader, extend, head, verify


def pipeline_rate(kind: str, n: int, tmp: str, chain: bool) -> float:
    with (
        TranscriptServer() as server,
        database(kind, tmp) as url,
        Runtime.open(url, create=True) as rt,
    ):
        _import_company(rt, tmp, n, server.url)
        extend(log_reader(rt))  # the import is linked before: only the run's cost counts
        with _daemon(rt, url, kind, until_idle=True) as daemon:
            if chain:
                daemon.scheduled.append(ChainKeeper(log_reader(rt), interval=0.5))
            daemon.run()
        timeline = _timeline(rt)
        assert all("SESSION_CREATION.completed" in m for m in timeline) and len(timeline) == n
        first = min(m["TRANSCRIPT_FETCH.started"] for m in timeline)
        last = max(m["SESSION_CREATION.completed"] for m in timeline)
        if chain:
            with rt.engine.connect() as conn:
                behind = sum(1 for _ in log_reader(rt).rows(conn, head(conn).position))
            assert behind < 5000, f"the keeper fell {behind} events behind"
        return n / (last - first).total_seconds()


def linking(kind: str, n: int, tmp: str) -> dict[str, Any]:
    with database(kind, tmp) as url, Runtime.open(url, create=True) as rt:
        t0 = time.perf_counter()
        events = full_pipeline_log(rt, uuid.uuid4(), n)
        written = time.perf_counter() - t0
        reader: LogReader = log_reader(rt)
        t0 = time.perf_counter()
        with rt.engine.connect() as conn:
            read = sum(1 for _ in reader.rows(conn, 0))
        raw = time.perf_counter() - t0
        t0 = time.perf_counter()
        top = extend(reader)
        linked = time.perf_counter() - t0
        t0 = time.perf_counter()
        verdict = verify(reader)
        checked = time.perf_counter() - t0
        assert read == events == verdict.checked and verdict.intact and top.position > 0
        return {
            "events": events,
            "written_events_per_s": round(events / written),
            "raw_read_events_per_s": round(events / raw),
            "linked_events_per_s": round(events / linked),
            "verified_events_per_s": round(events / checked),
            "link_time_per_write_time": round(linked / written, 3),
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=2000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--kinds", default="sqlite,postgres")
    p.add_argument("--postgres-url", default=benchlib.PG_ADMIN, help="server to create DBs on")
    p.add_argument("--out", type=Path, default=REPO / "bench-results.json")
    args = p.parse_args()
    benchlib.PG_ADMIN = args.postgres_url
    result: dict[str, Any] = {"machine": benchlib.machine()}
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
        for kind in args.kinds.split(","):
            on: list[float] = []
            off: list[float] = []
            for _ in range(args.runs):  # alternate, so a busy minute hits both alike
                off.append(pipeline_rate(kind, args.sessions, tmp, chain=False))
                on.append(pipeline_rate(kind, args.sessions, tmp, chain=True))
            result[kind] = {
                "pipeline_sessions_per_s_without_chain": stats(off),
                "pipeline_sessions_per_s_with_chain": stats(on),
                "throughput_kept": round(stats(on)["median"] / stats(off)["median"], 3),
                "linking": linking(kind, args.sessions, tmp),
            }
            print(json.dumps({kind: result[kind]}, indent=2), flush=True)
    merged: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    merged["audit_chain"] = result
    args.out.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
