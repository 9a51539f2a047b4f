"""LiveDash benchmarks: prints a table and writes bench-results.json at the repository root.

    python scripts/bench.py --size quick          # small sizes, under two minutes
    python scripts/bench.py --size full           # the sizes the issues name (takes long)
    python scripts/bench.py --only import,catchup --databases postgres
    python scripts/bench.py --size tiny --runs 1 --output /tmp/b.json   # the smoke test

Every figure is the median of --runs runs (min and max kept). Each bench creates its own
databases: SQLite files under --sqlite-dir, PostgreSQL databases on the server of
--postgres-url (created and dropped again). Numbers, not assertions: the test suite only runs
this at a tiny size so the script never rots.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib
from bench_pipeline import bench_pipeline, bench_rss, bench_trickle
from bench_report import print_table, summarise
from bench_state_table import StateTable, run_workload
from benchlib import (
    csv_text,
    database,
    fill_status_tables,
    full_pipeline_log,
    machine,
    percentile,
    source_row,
    stats,
)

from cli.runtime import Runtime
from domain.company import Company
from domain.history import describe
from domain.session import Session
from domain.stages import WORKER_STAGES, Status
from processors.clock import utc_now
from processors.ingest.importer import file_reader, run_import
from projections.queries import overview, status_report

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "import": 300,
        "catchup": 200,
        "transitions": 100,
        "overview": [1_000],
        "history": 50,
        "pipeline": 100,
        "trickle": 40,
        "ai": {"duration": 2.0, "sessions": 64, "limited_runs": 1},
        "rss": 200,
    },
    "quick": {
        "import": 3_000,
        "catchup": 2_000,
        "transitions": 300,
        "overview": [10_000],
        "history": 200,
        "pipeline": 1_000,
        "trickle": 100,
        "ai": {"duration": 6.0, "sessions": 192, "limited_runs": 1},
        "rss": 2_000,
    },
    "full": {
        "import": 100_000,
        "catchup": 30_000,
        "transitions": 3_000,
        "overview": [10_000, 100_000, 1_000_000],
        "history": 1_000,
        "pipeline": 20_000,
        "trickle": 1_000,
        "ai": {"duration": 30.0, "sessions": 960, "limited_runs": 3},
        "rss": 100_000,
    },
}
CLAIM_BATCH = 200
"""Sessions per claim in the transitions bench (the daemon claims up to 500 at a time)."""


def bench_import(kind: str, n: int, runs: int, tmp: str) -> dict[str, Any]:
    path = Path(tmp) / f"import-{n}.csv"
    path.write_text(csv_text(n), encoding="utf-8")
    rates = []
    for _ in range(runs):
        with database(kind, tmp) as url, Runtime.open(url, create=True) as rt:
            company = rt.app.register_company(Company.register("Bench", str(path), utc_now()))
            t = time.perf_counter()
            run = run_import(rt.app, rt.runner, company, file_reader(path), utc_now)
            elapsed = time.perf_counter() - t
            assert run.new == n, run
            rates.append(n / elapsed)
    return {"rows": n, "rows_per_s": stats(rates)}


def bench_catchup(kind: str, n: int, runs: int, tmp: str) -> dict[str, Any]:
    with database(kind, tmp) as url, Runtime.open(url, create=True) as rt:
        written = full_pipeline_log(rt, uuid.uuid4(), n)
        topics = rt.runner.projections["session_status"].topics
        rates, decode_rates = [], []
        applied = 0
        for _ in range(runs):
            t = time.perf_counter()
            applied = rt.runner.rebuild("session_status")
            rates.append(applied / (time.perf_counter() - t))
            t = time.perf_counter()
            decoded, position = 0, 0
            while True:
                page = rt.app.recorder.select_notifications(
                    start=position, limit=2000, topics=topics, inclusive_of_start=False
                )
                if not page:
                    break
                decoded += len([rt.app.mapper.to_domain_event(x) for x in page])
                position = page[-1].id
            decode_rates.append(decoded / (time.perf_counter() - t))
        return {
            "sessions": n,
            "events_in_log": written,
            "events_projected": applied,
            "events_per_s": stats(rates),
            "decode_events_per_s": stats(decode_rates),
            "ratio": stats(rates)["median"] / stats(decode_rates)["median"],
        }


# ------------------------------------------------------------ transitions
def bench_transitions(kind: str, n: int, runs: int, tmp: str) -> dict[str, Any]:
    """The same workload through both designs in the same database: n sessions × 4 worker
    stages × (start, complete). Only those 8n transitions are timed; creating the sessions
    (our Imported event; the baseline's five rows) is set-up for both and timed apart."""
    es: list[float] = []
    es_setup: list[float] = []
    st: list[float] = []
    st_setup: list[float] = []
    chained: list[float] = []
    for run in range(runs):
        with database(kind, tmp) as url, Runtime.open(url, create=True) as rt:
            # Rotate which design goes first, so none always gets the coldest cache.
            order: list[Callable[[], None]] = [
                lambda: _collect(es, es_setup, _event_sourced(rt, n)),
                lambda: _collect(st, st_setup, _state_table(url, n)),
                lambda: _collect(chained, [], _event_sourced_chained(rt, n)),
            ]
            for step in order[run % 3 :] + order[: run % 3]:
                step()
    return {
        "sessions": n,
        "transitions": 8 * n,
        "claim_batch": CLAIM_BATCH,
        "state_table": {"transitions_per_s": stats(st), "setup_seconds": stats(st_setup)},
        "event_sourced": {"transitions_per_s": stats(es), "setup_seconds": stats(es_setup)},
        "event_sourced_chained": {"transitions_per_s": stats(chained)},
        "ratio": stats(es)["median"] / stats(st)["median"],
        "ratio_chained": stats(chained)["median"] / stats(st)["median"],
    }


def _collect(rates: list[float], setups: list[float], result: tuple[float, float]) -> None:
    rates.append(result[0])
    setups.append(result[1])


def _clock() -> Callable[[], datetime]:
    """Strictly increasing timestamps from now on, cheaper than reading the clock each time."""
    t = [datetime.now(UTC)]

    def now() -> datetime:
        t[0] += timedelta(microseconds=1)
        return t[0]

    return now


def _import_sessions(
    rt: Runtime, n: int, now: Callable[[], datetime]
) -> tuple[uuid.UUID, list[uuid.UUID], float]:
    """Set-up, not measured: n Imported events (CSV_IMPORT done, the rest PENDING)."""
    company = uuid.uuid4()
    t = time.perf_counter()
    ids: list[uuid.UUID] = []
    for start in range(0, n, 500):
        batch = [
            Session.import_row(company, source_row(i, now()), "bench.csv", now())
            for i in range(start, min(n, start + 500))
        ]
        rt.app.save_batch(batch)
        ids.extend(s.id for s in batch)
    rt.runner.catch_up()
    return company, ids, time.perf_counter() - t


def _event_sourced(rt: Runtime, n: int) -> tuple[float, float]:
    """As the brief's daemon model: per batch and stage, claim (load, start each, one
    transaction), then complete (one transaction); every projection caught up after each
    write, so each transition is also projected."""
    now = _clock()
    company, ids, setup = _import_sessions(rt, n, now)
    t = time.perf_counter()
    for start in range(0, n, CLAIM_BATCH):
        chunk = ids[start : start + CLAIM_BATCH]
        for stage in WORKER_STAGES:
            sessions = rt.app.get_sessions(chunk)
            lease = now() + timedelta(minutes=2)
            attempts = [s.start_stage(stage, "bench", lease, now()) for s in sessions]
            rt.app.save_batch(sessions)
            rt.runner.catch_up()
            for s, attempt in zip(sessions, attempts, strict=True):
                s.complete_stage(stage, attempt, now(), {"bench": True})
            rt.app.save_batch(sessions)
            rt.runner.catch_up()
    elapsed = time.perf_counter() - t
    _check_completed(rt, company, n)
    return 8 * n / elapsed, setup


def _event_sourced_chained(rt: Runtime, n: int) -> tuple[float, float]:
    """What `livedash run` does within one daemon: a batch is loaded once, and completing
    stage N starts stage N+1 in the same transaction (5 commits per batch instead of 8)."""
    now = _clock()
    company, ids, setup = _import_sessions(rt, n, now)
    t = time.perf_counter()
    for start in range(0, n, CLAIM_BATCH):
        sessions = rt.app.get_sessions(ids[start : start + CLAIM_BATCH])
        lease = now() + timedelta(minutes=2)
        stage = WORKER_STAGES[0]
        attempts = [s.start_stage(stage, "bench", lease, now()) for s in sessions]
        rt.app.save_batch(sessions)
        rt.runner.catch_up()
        for i, stage in enumerate(WORKER_STAGES):
            nxt = WORKER_STAGES[i + 1] if i + 1 < len(WORKER_STAGES) else None
            for k, s in enumerate(sessions):
                s.complete_stage(stage, attempts[k], now(), {"bench": True})
                if nxt is not None:
                    attempts[k] = s.start_stage(nxt, "bench", lease, now())
            rt.app.save_batch(sessions)
            rt.runner.catch_up()
    elapsed = time.perf_counter() - t
    _check_completed(rt, company, n)
    return 8 * n / elapsed, setup


def _check_completed(rt: Runtime, company: uuid.UUID, n: int) -> None:
    with rt.engine.connect() as conn:
        counts = overview(conn, company)
    for stage in WORKER_STAGES:
        assert counts[stage.value][Status.COMPLETED.value] == n, counts


def _state_table(url: str, n: int) -> tuple[float, float]:
    table = StateTable(url)
    try:
        table.create()
        ids = [uuid.uuid4().hex for _ in range(n)]
        t = time.perf_counter()
        table.initialise(ids, datetime.now(UTC))
        setup = time.perf_counter() - t
        t = time.perf_counter()
        count = run_workload(table, ids, CLAIM_BATCH, _clock(), {"bench": True})
        elapsed = time.perf_counter() - t
        counts = table.overview()
        for stage in WORKER_STAGES:
            assert counts[stage.value].get("COMPLETED") == n, counts
        return count / elapsed, setup
    finally:
        table.close()


# --------------------------------------------------------------- overview
def bench_overview(kind: str, sizes: list[int], runs: int, tmp: str) -> dict[str, Any]:
    """Counts per stage × status at each size, both designs in one database filled in bulk
    with the same status mix; also our whole `livedash status` report."""
    out: dict[str, Any] = {"state_table": {}, "event_sourced": {}, "status_report": {}}
    for n in sizes:
        with database(kind, tmp) as url, Runtime.open(url, create=True) as rt:
            fill_status_tables(rt.engine, n)
            table = StateTable(url)
            try:
                table.create()
                table.fill(n)
                samples = max(runs, 5)
                out["state_table"][str(n)] = _timed(samples, table.overview)
            finally:
                table.close()
            with rt.engine.connect() as conn:
                out["event_sourced"][str(n)] = _timed(samples, lambda: overview(conn))
                out["status_report"][str(n)] = _timed(samples, lambda: status_report(conn))
                assert status_report(conn).total_sessions == n
    return out


def _timed(samples: int, fn: Callable[[], object]) -> dict[str, float]:
    fn()  # warm: the first call pays for parsing and the cold cache, not the design
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return stats(times)


# ---------------------------------------------------------------- history
def bench_history(kind: str, n: int, runs: int, tmp: str) -> dict[str, Any]:
    from sqlalchemy import select

    from projections.schema import sessions

    with database(kind, tmp) as url, Runtime.open(url, create=True) as rt:
        full_pipeline_log(rt, uuid.uuid4(), n)
        rt.runner.catch_up()
        with rt.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(select(sessions.c.session_id)).all()]
        rng = random.Random(3)
        samples = []
        for _ in range(max(runs * 100, 200)):
            sid = rng.choice(ids)
            t = time.perf_counter()
            describe(rt.app.session_events(sid))
            samples.append((time.perf_counter() - t) * 1000)
        return {
            "sessions": n,
            "lookups": len(samples),
            "history_ms": {"p50": percentile(samples, 50), "p99": percentile(samples, 99)},
        }


# --------------------------------------------------------------------- AI
def bench_ai(kind: str, size: dict[str, Any], runs: int, tmp: str) -> dict[str, Any]:
    """AI_ANALYSIS against the fake OpenAI server (300 ms per answer): unlimited at 32
    threads, and held to 600 requests/min by our rate limiter. No database involved."""
    from bench_ai import limited, unlimited

    from tests.openai_server import FakeOpenAI

    latency, threads = 0.3, 32
    with FakeOpenAI(latency=latency) as server:
        free = [
            unlimited(server.base_url, threads, size["sessions"], latency)["sessions_per_s"]
            for _ in range(runs)
        ]
        held = [
            limited(server.base_url, 600, threads, size["duration"])
            for _ in range(min(runs, size["limited_runs"]) or 1)
        ]
    return {
        "latency_s": latency,
        "threads": threads,
        "sessions": size["sessions"],
        "sessions_per_s": stats(free),
        "ceiling_per_s": threads / latency,
        "limited": {
            "limit_rpm": 600,
            "seconds": size["duration"],
            "achieved_rpm": stats([h["achieved_rpm"] for h in held]),
            "percent_of_limit": stats([h["percent_of_limit"] for h in held]),
        },
    }


BENCHES: dict[str, Callable[[str, Any, int, str], dict[str, Any]]] = {
    "import": bench_import,
    "catchup": bench_catchup,
    "transitions": bench_transitions,
    "overview": bench_overview,
    "history": bench_history,
    "pipeline": bench_pipeline,
    "trickle": bench_trickle,
    "ai": bench_ai,
    "rss": bench_rss,
}
ONE_DATABASE = {"history", "rss"}
"""Benches run on one database only: the first of --databases (for rss: PostgreSQL if listed,
because a daemon over 100k sessions is the production case). "ai" uses no database."""


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="quick")
    p.add_argument("--runs", type=int, default=3, help="runs per figure (median, min, max)")
    p.add_argument("--only", default=",".join(BENCHES), help="comma-separated benches")
    p.add_argument("--databases", default="sqlite,postgres")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="BENCH=N",
        help="override one size, e.g. --set rss=20000 --set overview=10000,100000",
    )
    p.add_argument("--postgres-url", default=benchlib.PG_ADMIN, help="server to create DBs on")
    p.add_argument("--sqlite-dir", default=None, help="folder for SQLite files (default: tmp)")
    p.add_argument(
        "--output", default=str(Path(__file__).resolve().parent.parent / "bench-results.json")
    )
    return p.parse_args()


def _sizes(args: argparse.Namespace) -> dict[str, Any]:
    sizes = dict(SIZES[args.size])
    for item in args.set:
        name, _, value = item.partition("=")
        if name == "overview":
            sizes[name] = [int(v) for v in value.split(",")]
        elif name in sizes and name != "ai":
            sizes[name] = int(value)
        else:
            raise SystemExit(f"--set: cannot set {name!r}")
    return sizes


def _kinds_for(name: str, kinds: list[str]) -> list[str]:
    if name == "ai":
        return ["none"]
    if name == "rss" and "postgres" in kinds:
        return ["postgres"]
    return kinds[:1] if name in ONE_DATABASE else kinds


def main() -> None:
    args = _parse_args()
    benchlib.PG_ADMIN = args.postgres_url
    sizes = _sizes(args)
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"unknown bench(es): {', '.join(unknown)}; choose from {list(BENCHES)}")
    results: dict[str, Any] = {
        "machine": machine(),
        "size": args.size,
        "runs": args.runs,
        "sizes": sizes,
        "details": {},
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="livedash-bench-", dir=args.sqlite_dir) as tmp:
        for name in names:
            for kind in _kinds_for(name, kinds):
                _run_one(results, name, kind, sizes[name], 1 if name == "rss" else args.runs, tmp)
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    summarise(results)
    print_table(results)
    Path(args.output).write_text(
        json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8"
    )
    print(f"\nwrote {args.output} ({results['wall_seconds']} s)")
    if results.get("errors"):
        print(f"{len(results['errors'])} bench(es) failed: {', '.join(results['errors'])}")
        raise SystemExit(1)


def _run_one(results: dict[str, Any], name: str, kind: str, size: Any, runs: int, tmp: str) -> None:
    """One bench on one database; a failure is recorded and the suite goes on, so a long
    full run still reports everything else."""
    t = time.perf_counter()
    try:
        detail = BENCHES[name](kind, size, runs, tmp)
    except Exception as e:  # reported below and in the exit code
        traceback.print_exc()
        results.setdefault("errors", {})[f"{name}/{kind}"] = f"{type(e).__name__}: {e}"
        return
    detail["wall_seconds"] = round(time.perf_counter() - t, 2)
    results["details"].setdefault(name, {})[kind] = detail
    print(f"{name:11} {kind:9} {detail['wall_seconds']:7.1f} s", flush=True)


if __name__ == "__main__":
    main()
