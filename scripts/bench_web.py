"""Server render time of each page of `livedash serve` at N sessions.

    python scripts/bench_web.py --sessions 1000000 --databases postgres

The status tables are filled in bulk by the database (benchlib.fill_status_tables: five stage
rows per session, a mix of finished, waiting, failed and running), with a company row, one
AI usage row per session (rolled up into `ai_cost_daily` by the projection's own backfill:
the Costs page's input) and the event index's completions of the
sessions that changed within the last two hours (the throughput chart's input); a few real
sessions are imported through the application, so the Session page folds a real history.
Each page is requested in-process (Starlette's TestClient: no network), warmed once, then
timed ``--runs`` times; the median ms per page is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import csv_text, database, fill_status_tables
from starlette.testclient import TestClient

from cli.runtime import Runtime
from cli.web.app import build_app
from domain.company import Company
from processors.clock import utc_now
from processors.ingest.importer import file_reader, run_import
from processors.service.backend import Backend
from projections import cost_rollup

REAL = 20
"""Sessions imported through the application (the rest are bulk rows)."""


def fill_extras(rt: Runtime, n: int) -> None:
    """What fill_status_tables does not write: the synthetic company, AI usage, the event
    index of the last two hours' completions (one session changed per second before now)."""
    engine = rt.engine
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        company = conn.exec_driver_sql(
            "SELECT company_id FROM session_stage_status LIMIT 1"
        ).scalar_one()
        cid = str(company) if pg else uuid.UUID(str(company)).hex
        now = "now()" if pg else "strftime('%Y-%m-%d %H:%M:%f000', 'now')"
        conn.exec_driver_sql(
            "INSERT INTO companies (company_id, name, status, csv_url, timezone, registered_at, "
            f"updated_at) VALUES ('{cid}', 'Synthetic BV', 'ACTIVE', '/data/export.csv', 'UTC', "
            f"{now}, {now})"
        )
        if pg:
            conn.exec_driver_sql(
                f"""
                INSERT INTO ai_usage (session_id, version, company_id, stage, attempt, provider,
                    model_requested, model_returned, prompt_tokens, completion_tokens,
                    cached_tokens, reasoning_tokens, total_tokens, cost_eur, price_source,
                    received_at)
                SELECT md5('{cid}' || s.n)::uuid, 9, '{cid}'::uuid, 'AI_ANALYSIS', 1, 'openai',
                    'gpt-4o-mini', CASE WHEN s.n %% 50 = 0 THEN 'mystery-model' ELSE
                    'gpt-4o-mini-2024-07-18' END, 800, 200, 0, 0, 1000,
                    CASE WHEN s.n %% 50 = 0 THEN NULL ELSE 0.00012 END, 'bench',
                    now() - (s.n || ' seconds')::interval
                FROM generate_series(1, {n}) AS s(n)
                """
            )
            conn.exec_driver_sql(
                f"""
                INSERT INTO event_index (position, time, type, session_id, company_id, stage,
                    status_before, status_after, attempt, worker)
                SELECT 10000000 + s.n * 4 + st.k, now() - (s.n || ' seconds')::interval,
                    'StageCompleted', md5('{cid}' || s.n)::uuid, '{cid}'::uuid, st.name,
                    'IN_PROGRESS', 'COMPLETED', 1, 'bench'
                FROM generate_series(1, {min(n, 7200)}) AS s(n)
                CROSS JOIN (VALUES ('TRANSCRIPT_FETCH', 0), ('SESSION_CREATION', 1),
                    ('AI_ANALYSIS', 2), ('QUESTION_EXTRACTION', 3)) AS st(name, k)
                """
            )
            conn.exec_driver_sql("ANALYZE")
        else:
            rows = f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n})"
            conn.exec_driver_sql(
                f"""{rows}
                INSERT INTO ai_usage (session_id, version, company_id, stage, attempt, provider,
                    model_requested, model_returned, prompt_tokens, completion_tokens,
                    cached_tokens, reasoning_tokens, total_tokens, cost_eur, price_source,
                    received_at)
                SELECT printf('%032x', s.n), 9, '{cid}', 'AI_ANALYSIS', 1, 'openai',
                    'gpt-4o-mini', CASE WHEN s.n % 50 = 0 THEN 'mystery-model' ELSE
                    'gpt-4o-mini-2024-07-18' END, 800, 200, 0, 0, 1000,
                    CASE WHEN s.n % 50 = 0 THEN NULL ELSE '0.00012' END, 'bench',
                    strftime('%Y-%m-%d %H:%M:%f000', 'now', '-' || s.n || ' seconds')
                FROM s
                """
            )
            conn.exec_driver_sql("ANALYZE")


def seed(url: str, n: int, folder: Path) -> None:
    with Runtime.open(url, create=True) as rt:
        fill_status_tables(rt.engine, n)
        fill_extras(rt, n)
        with rt.engine.begin() as conn:  # the Costs page's rollup, as the projection keeps it
            cost_rollup.backfill(conn)
        csv_file = folder / "real.csv"
        csv_file.write_text(csv_text(REAL, seed=7), encoding="utf-8")
        company = rt.app.register_company(Company.register("Real BV", str(csv_file), utc_now()))
        run_import(rt.app, rt.runner, company, file_reader(csv_file), utc_now)
        rt.runner.catch_up()


def pages(client: TestClient) -> dict[str, str]:
    real = client.get("/sessions", params={"company": "Real BV"}).text
    sid = real.split('href="/sessions/', 1)[1].split('"', 1)[0]
    page2 = client.get("/sessions").text.split('id="next" href="', 1)[1].split('"', 1)[0]
    return {
        "overview": "/",
        "sessions": "/sessions",
        "sessions page 2": page2.replace("&amp;", "&"),
        "sessions FAILED fetch": "/sessions?stage=TRANSCRIPT_FETCH&status=FAILED",
        "sessions by error type": "/sessions?error_type=http_404",
        "session": f"/sessions/{sid}",
        "failures": "/failures",
        "companies": "/companies",
        "costs": "/costs",
    }


def measure(url: str, runs: int) -> dict[str, dict[str, float]]:
    with Runtime.open(url) as rt:
        backend = Backend(app=rt.app, engine=rt.engine, runner=rt.runner, clock=utc_now)
        client = TestClient(build_app(backend, None))
        found: dict[str, dict[str, float]] = {}
        for name, path in pages(client).items():
            assert client.get(path).status_code == 200, path  # warm
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200, (path, response.text[:300])
            found[name] = {"median": statistics.median(times), "max": max(times)}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--databases", default="postgres")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path, help="Also write the figures here")
    args = parser.parse_args()
    results: dict[str, Any] = {"sessions": args.sessions, "runs": args.runs}
    for kind in args.databases.split(","):
        with tempfile.TemporaryDirectory() as tmp, database(kind, tmp) as url:
            t = time.perf_counter()
            seed(url, args.sessions, Path(tmp))
            print(f"{kind}: seeded {args.sessions:,} sessions in {time.perf_counter() - t:.0f} s")
            figures = measure(url, args.runs)
        results[kind] = figures
        print(f"\n{kind}, {args.sessions:,} sessions: server render ms per page (median, max)")
        for name, f in figures.items():
            print(f"  {name:<24} {f['median']:8.1f} {f['max']:8.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
