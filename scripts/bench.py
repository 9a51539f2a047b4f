"""LiveDash benchmarks: prints a table and writes bench-results.json at the repository root.

    python scripts/bench.py --size quick          # small sizes, a couple of minutes
    python scripts/bench.py --size full           # the sizes the issues name
    python scripts/bench.py --only import,catchup --databases postgres

Every figure is the median of --runs runs (min and max kept). Numbers, not assertions: the
test suite only runs this at a tiny size so the script never rots.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    TranscriptServer,
    csv_text,
    database,
    fill_status_tables,
    full_pipeline_log,
    machine,
    percentile,
    pipeline_csv,
    stats,
)

from cli.runtime import Runtime
from domain.company import Company
from domain.history import describe
from processors.clock import utc_now
from processors.csv_import import file_reader, run_import
from projections.queries import status_report

SIZES = {
    "tiny": {"import": 300, "catchup": 200, "status": 2_000, "history": 50, "pipeline": 100},
    "quick": {
        "import": 5_000,
        "catchup": 3_000,
        "status": 10_000,
        "history": 200,
        "pipeline": 2_000,
    },
    "full": {
        "import": 100_000,
        "catchup": 30_000,
        "status": 1_000_000,
        "history": 1_000,
        "pipeline": 20_000,
    },
}


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


def bench_status(kind: str, n: int, runs: int, tmp: str) -> dict[str, Any]:
    with database(kind, tmp) as url, Runtime.open(url, create=True) as rt:
        t = time.perf_counter()
        fill_status_tables(rt.engine, n)
        fill_s = time.perf_counter() - t
        samples = []
        for _ in range(max(runs, 5)):
            with rt.engine.connect() as conn:
                t = time.perf_counter()
                report = status_report(conn)
                samples.append((time.perf_counter() - t) * 1000)
            assert report.total_sessions == n, report.total_sessions
        return {"sessions": n, "fill_seconds": fill_s, "status_query_ms": stats(samples)}


def bench_history(kind: str, n: int, runs: int, tmp: str) -> dict[str, Any]:
    with database(kind, tmp) as url, Runtime.open(url, create=True) as rt:
        full_pipeline_log(rt, uuid.uuid4(), n)
        rt.runner.catch_up()
        from sqlalchemy import select

        from projections.schema import sessions

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
            "history_ms": {"p50": percentile(samples, 50), "p99": percentile(samples, 99)},
        }


def bench_pipeline(kind: str, n: int, runs: int, tmp: str) -> dict[str, Any]:
    """CSV → SESSION_CREATION through the real daemon, transcripts from a local HTTP server."""
    import io
    import threading

    from cli.cmd_run import build_processors, stage_configs
    from cli.context import State
    from cli.runtime import events_table
    from cli.settings import Settings
    from domain.session import Session
    from domain.stages import Stage
    from processors.daemon import Daemon, DaemonConfig
    from processors.notify import PgListener
    from processors.reporting import JsonLogReporter

    rates, handoffs = [], []
    for _ in range(runs):
        with (
            TranscriptServer() as server,
            database(kind, tmp) as url,
            Runtime.open(url, create=True) as rt,
        ):
            path = Path(tmp) / f"pipeline-{n}.csv"
            path.write_text(pipeline_csv(n, server.url), encoding="utf-8")
            company = rt.app.register_company(Company.register("Pipe", str(path), utc_now()))
            run_import(rt.app, rt.runner, company, file_reader(path), utc_now)
            rt.runner.catch_up()
            stages = (Stage.TRANSCRIPT_FETCH, Stage.SESSION_CREATION)
            configs = stage_configs(
                120.0, {}, {Stage.TRANSCRIPT_FETCH: 32, Stage.SESSION_CREATION: 4}
            )
            state = State(Settings(database_url=url), {})
            config = DaemonConfig(
                worker_id="bench",
                stages=stages,
                stage_configs=configs,
                until_idle=True,
                idle_horizon=0,
                poll_interval=0.05 if kind == "sqlite" else 1.0,
                level_interval=2.0,
            )
            daemon = Daemon(
                rt.app,
                rt.runner,
                build_processors(state, configs),
                config,
                utc_now,
                JsonLogReporter(io.StringIO()),
            )
            listener = None
            if kind == "postgres":
                listener = PgListener(rt.config, events_table(rt.config), daemon.wake.set).start()
            t = time.perf_counter()
            daemon.run()
            wall = time.perf_counter() - t
            if listener:
                listener.stop()
            first_start = None
            last_done = None
            lat = []
            from sqlalchemy import select

            from projections.schema import sessions as st

            with rt.engine.connect() as conn:
                ids = [r[0] for r in conn.execute(select(st.c.session_id))]
            for sid in ids:
                done_fetch = None
                for e in rt.app.session_events(sid):
                    if isinstance(e, Session.StageStarted) and e.stage is Stage.TRANSCRIPT_FETCH:
                        first_start = min(first_start or e.timestamp, e.timestamp)
                    if isinstance(e, Session.StageCompleted) and e.stage is Stage.TRANSCRIPT_FETCH:
                        done_fetch = e.timestamp
                    if (
                        isinstance(e, Session.StageStarted)
                        and e.stage is Stage.SESSION_CREATION
                        and done_fetch
                    ):
                        lat.append((e.timestamp - done_fetch).total_seconds() * 1000)
                    if isinstance(e, Session.StageCompleted) and e.stage is Stage.SESSION_CREATION:
                        last_done = max(last_done or e.timestamp, e.timestamp)
            assert len(lat) == n, (len(lat), n)
            busy = (last_done - first_start).total_seconds()
            rates.append(n / busy)
            handoffs.extend(lat)
            del wall, threading
    return {
        "sessions": n,
        "sessions_per_s": stats(rates),
        "handoff_ms": {
            p: percentile(handoffs, q) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))
        },
    }


BENCHES = {
    "import": bench_import,
    "catchup": bench_catchup,
    "status": bench_status,
    "history": bench_history,
    "pipeline": bench_pipeline,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default=",".join(BENCHES))
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument(
        "--output", default=str(Path(__file__).resolve().parent.parent / "bench-results.json")
    )
    args = parser.parse_args()
    sizes = SIZES[args.size]
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    results: dict[str, Any] = {
        "machine": machine(),
        "size": args.size,
        "runs": args.runs,
        "details": {},
    }
    with tempfile.TemporaryDirectory(prefix="livedash-bench-") as tmp:
        for name in [n.strip() for n in args.only.split(",") if n.strip()]:
            fn = BENCHES[name]
            for kind in kinds:
                if name == "history" and kind != kinds[0]:
                    continue
                t = time.perf_counter()
                detail = fn(kind, sizes[name], args.runs, tmp)
                detail["wall_seconds"] = round(time.perf_counter() - t, 2)
                results["details"].setdefault(name, {})[kind] = detail
                print(f"{name:8} {kind:9} {json.dumps(detail, default=str)}", flush=True)
    summarise(results)
    Path(args.output).write_text(
        json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8"
    )
    print(f"\nwrote {args.output}")


def summarise(results: dict[str, Any]) -> None:
    """Flat keys that other tools read (see the benchmark issue), next to the details."""
    d = results["details"]
    if "import" in d:
        results["import_rows_per_s"] = {
            k: v["rows_per_s"]["median"] for k, v in d["import"].items()
        }
    if "catchup" in d:
        results["projection_catchup_events_per_s"] = {
            k: v["events_per_s"]["median"] for k, v in d["catchup"].items()
        }
        results["log_decode_events_per_s"] = {
            k: v["decode_events_per_s"]["median"] for k, v in d["catchup"].items()
        }
    if "status" in d:
        results["status_query_ms"] = {
            k: v["status_query_ms"]["median"] for k, v in d["status"].items()
        }
    if "history" in d:
        first = next(iter(d["history"].values()))
        results["history_ms"] = first["history_ms"]
    if "pipeline" in d:
        results["pipeline_sessions_per_s"] = {
            k: v["sessions_per_s"]["median"] for k, v in d["pipeline"].items()
        }
        results["handoff_ms"] = {k: v["handoff_ms"] for k, v in d["pipeline"].items()}
    m = results["machine"]
    print(
        f"\nmachine: {m['cpu']} x{m['cores']}, Python {m['python']}, PostgreSQL {m['postgres']}, SQLite {m['sqlite']}"
    )
    for key in (
        "import_rows_per_s",
        "projection_catchup_events_per_s",
        "log_decode_events_per_s",
        "status_query_ms",
        "history_ms",
    ):
        if key in results:
            values = ", ".join(f"{k}={v:,.1f}" for k, v in results[key].items())
            print(f"  {key:34} {values}")


if __name__ == "__main__":
    main()
