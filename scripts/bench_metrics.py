"""Response times of `/metrics`, `/healthz` and `/readyz` as a daemon serves them.

    .venv/bin/python scripts/bench_metrics.py --sessions 100000 --requests 200
    .venv/bin/python scripts/bench_metrics.py --databases postgres --sessions 1000000

Fills the status tables with ``--sessions`` synthetic sessions (benchlib.fill_status_tables:
a mix of finished, waiting, failed and running ones, one ACTIVE company), then serves the
endpoints exactly as `livedash run --metrics-port` does (same server, same registry, in this
process) and times ``--requests`` GETs of each over one keep-alive connection: the median
and 95th percentile in milliseconds. `/metrics` is timed twice: as served (the store's gauges
read at most once a second, or ten times as long as a reading took, so most scrapes reuse it) and with the reading taken
anew on every scrape (``max_age`` 0, what a scrape costs at worst). ``read_store_ms`` is one
reading of the store on its own.
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from benchlib import database, fill_status_tables, percentile

from cli.runtime import Runtime
from processors.runtime.metrics import DaemonMetrics
from processors.runtime.metrics_server import MetricsServer
from projections.health import HealthEndpoints
from projections.metrics_collector import StoreGauges, due_backlog, read_store
from projections.queries import overview
from projections.ready import backfill_ready
from projections.workers import fleet_info


def activate_companies(rt: Runtime) -> None:
    """The synthetic sessions' company, registered ACTIVE (its due work counts), and the
    `stage_ready` rows the status projection would keep for them."""
    with rt.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO companies (company_id, name, status, csv_url, timezone, "
            "registered_at, updated_at) SELECT DISTINCT company_id, 'Bench', 'ACTIVE', 'x.csv', "
            "'UTC', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM pipeline_overview"
        )
        backfill_ready(conn)
    if rt.engine.dialect.name == "postgresql":  # as autovacuum leaves a table in steady state
        with rt.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE stage_ready, companies, session_stage_status")


def timed_gets(port: int, path: str, n: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    samples = []
    size = 0
    for _ in range(n):
        began = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        samples.append((time.perf_counter() - began) * 1000)
        size = len(body)
    conn.close()
    return {
        "median_ms": round(percentile(samples, 50), 2),
        "p95_ms": round(percentile(samples, 95), 2),
        "bytes": size,
    }


def serve(rt: Runtime, max_age: float) -> MetricsServer:
    metrics = DaemonMetrics("bench")
    # max_age 0: a reading on every scrape (share 0: not even a slow one is kept)
    metrics.include(
        StoreGauges(rt.runner, max_age) if max_age else StoreGauges(rt.runner, 0, share=0)
    )
    return MetricsServer(HealthEndpoints(metrics.registry, rt.runner)).start()


def median_ms(fn: Callable[[], Any], n: int) -> float:
    samples = []
    for _ in range(n):
        began = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - began) * 1000)
    return round(percentile(samples, 50), 2)


def measure(kind: str, sessions: int, requests: int, folder: str) -> dict[str, Any]:
    out: dict[str, Any] = {"sessions": sessions}
    with database(kind, folder) as url, Runtime.open(url, create=True) as rt:
        fill_status_tables(rt.engine, sessions)
        activate_companies(rt)
        out["read_store_ms"] = median_ms(lambda: read_store(rt.runner, datetime.now(UTC)), 20)
        with rt.engine.connect() as conn:  # its parts, to see which one grows
            out["parts_ms"] = {
                "overview": median_ms(lambda: overview(conn), 10),
                "due_backlog": median_ms(lambda: due_backlog(conn, datetime.now(UTC)), 10),
                "fleet": median_ms(lambda: fleet_info(conn, datetime.now(UTC)), 10),
                "lag": median_ms(rt.runner.lag, 10),
            }
        for label, max_age in (("served", 1.0), ("uncached", 0.0)):
            server = serve(rt, max_age)
            try:
                if label == "served":
                    for path in ("/healthz", "/readyz", "/metrics"):
                        timed_gets(server.port, path, 5)  # warm: connections, imports
                        out[path] = timed_gets(server.port, path, requests)
                else:
                    out["/metrics uncached"] = timed_gets(server.port, "/metrics", requests)
            finally:
                server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--sqlite-dir", default=None)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(dir=args.sqlite_dir) as folder:
        for kind in args.databases.split(","):
            results[kind] = measure(kind, args.sessions, args.requests, folder)
            print(json.dumps({kind: results[kind]}), flush=True)
    print()
    print(f"{'':10} {'endpoint':20} {'median ms':>10} {'p95 ms':>8}")
    for kind, found in results.items():
        for name, figures in found.items():
            if name.startswith("/"):
                print(f"{kind:10} {name:20} {figures['median_ms']:>10} {figures['p95_ms']:>8}")
        print(f"{kind:10} {'read_store (direct)':20} {found['read_store_ms']:>10}")
        for part, ms in found["parts_ms"].items():
            print(f"{kind:10} {'  ' + part:20} {ms:>10}")


if __name__ == "__main__":
    main()
