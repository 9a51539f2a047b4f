"""Benchmark of `livedash migrate-legacy`: N legacy sessions with 10 messages each, into PostgreSQL.

    python scripts/bench_migrate.py                    # 100 000 sessions, refactored schema
    python scripts/bench_migrate.py -n 10000 --variant pre-refactor --profile

The legacy database is filled in SQL (INSERT ... SELECT generate_series): every session has its
import with the transcript text, 10 messages and 5 status rows; every fifth is analysed, with one
AI request and two questions. The migration runs through the same code as the command; the
projection catch-up that follows it is timed separately.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import pg_database

from cli.runtime import Runtime
from processors.clock import utc_now
from processors.legacy.migration import catch_up, migrate_legacy
from processors.legacy.options import MigrationOptions
from tests.legacy_schema import create_schema

FILL = """
SET TimeZone = 'UTC';
INSERT INTO "Company" ("id", "name", "csvUrl", "csvUsername", "csvPassword", "createdAt", "updatedAt")
VALUES ('c-bench', 'Bench', 'https://legacy.example/export.csv', 'u', 'p', {ts0}, {ts0});

CREATE TEMP TABLE g AS
SELECT g, timestamptz '2025-01-01 00:00+00' + g * interval '1 minute' AS t
FROM generate_series(1, {n}) g;

INSERT INTO "SessionImport" ("id", "companyId", "externalSessionId", "startTimeRaw", "endTimeRaw",
    "ipAddress", "countryCode", "language", "messagesSent", "sentimentRaw", "escalatedRaw",
    "forwardedHrRaw", "fullTranscriptUrl", "avgResponseTimeSeconds", "tokens", "tokensEur",
    "category", "initialMessage", "rawTranscriptContent", "createdAt"{import_status_cols})
SELECT 'i-' || g, 'c-bench', 'ext-' || g, to_char(t, 'DD.MM.YYYY HH24:MI:SS'),
    to_char(t + interval '5 minutes', 'DD.MM.YYYY HH24:MI:SS'), '192.0.2.1', 'NL', 'dutch', 5,
    'neutral', 'no', 'no', 'https://legacy.example/t/' || g || '.txt', 2.5, 120, 0.0012,
    'Schedule', 'Hoi',
    (SELECT string_agg(format('[%s] %s: message %s of session %s',
            to_char(t + k * interval '20 seconds', 'DD.MM.YYYY HH24:MI:SS'),
            CASE WHEN k % 2 = 0 THEN 'User' ELSE 'Assistant' END, k, g), E'\\n' ORDER BY k)
     FROM generate_series(0, 9) k),
    t + interval '1 hour'{import_status_vals}
FROM g;

INSERT INTO "Session" ("id", "companyId", "importId", "startTime", "endTime", "ipAddress",
    "country", "fullTranscriptUrl", "avgResponseTime", "initialMsg", "language", "sentiment",
    "escalated", "forwardedHr", "category", "summary", "createdAt", "updatedAt")
SELECT 's-' || g, 'c-bench', 'i-' || g, t, t + interval '5 minutes', '192.0.2.1', 'NL',
    'https://legacy.example/t/' || g || '.txt', 2.5, 'Hoi',
    CASE WHEN g % 5 = 0 THEN 'nl' END,
    CASE WHEN g % 5 = 0 THEN 'NEUTRAL'::"SentimentCategory" END,
    CASE WHEN g % 5 = 0 THEN false END, CASE WHEN g % 5 = 0 THEN true END,
    CASE WHEN g % 5 = 0 THEN 'SICK_LEAVE_RECOVERY'::"SessionCategory" END,
    CASE WHEN g % 5 = 0 THEN 'The user asked how to report sick leave.' END,
    t + interval '2 hours', t + interval '3 hours'
FROM g;

INSERT INTO "Message" ("id", "sessionId", "timestamp", "role", "content", "order", "createdAt")
SELECT 'm-' || g || '-' || k, 's-' || g, t + k * interval '20 seconds',
    CASE WHEN k % 2 = 0 THEN 'user' ELSE 'assistant' END,
    format('message %s of session %s', k, g), k, t + interval '2 hours'
FROM g, generate_series(0, 9) k;

INSERT INTO "Question" ("id", "content", "createdAt") VALUES
    ('q-1', 'How do I report sick leave?', {ts0}), ('q-2', 'Who do I call?', {ts0});
INSERT INTO "SessionQuestion" ("id", "sessionId", "questionId", "order", "createdAt")
SELECT 'sq-' || g || '-' || k, 's-' || g, 'q-' || k, k - 1, t + interval '3 hours'
FROM g, generate_series(1, 2) k WHERE g % 5 = 0;

INSERT INTO "AIProcessingRequest" ("id", "sessionId", "openaiRequestId", "model", "promptTokens",
    "completionTokens", "totalTokens", "promptTokenCost", "completionTokenCost", "totalCostEur",
    "processingType", "success", "requestedAt", "completedAt")
SELECT 'r-' || g, 's-' || g, 'chatcmpl-' || g, 'gpt-4o-2024-08-06', 1000, 200, 1200, 2.5e-6,
    1e-5, 0.00382, 'session_analysis', true, t + interval '3 hours',
    t + interval '3 hours 4 seconds'
FROM g WHERE g % 5 = 0;
"""

STATUS_ROWS = """
INSERT INTO "SessionProcessingStatus" ("id", "sessionId", "stage", "status", "startedAt",
    "completedAt", "retryCount")
SELECT 'p-' || g || '-' || st, 's-' || g, st::"ProcessingStage",
    (CASE WHEN st IN ('AI_ANALYSIS', 'QUESTION_EXTRACTION') AND g % 5 <> 0 THEN 'PENDING'
          ELSE 'COMPLETED' END)::"ProcessingStatus",
    CASE WHEN st IN ('AI_ANALYSIS', 'QUESTION_EXTRACTION') AND g % 5 <> 0 THEN NULL
         ELSE t + interval '2 hours' END,
    CASE WHEN st IN ('AI_ANALYSIS', 'QUESTION_EXTRACTION') AND g % 5 <> 0 THEN NULL
         ELSE t + interval '2 hours 1 second' END,
    0
FROM g, unnest(ARRAY['CSV_IMPORT', 'TRANSCRIPT_FETCH', 'SESSION_CREATION', 'AI_ANALYSIS',
                     'QUESTION_EXTRACTION']) st;
"""


def fill(url: str, n: int, variant: str) -> float:
    t = time.perf_counter()
    create_schema(url, variant)  # type: ignore[arg-type]
    pre = variant == "pre-refactor"
    ts0 = "timestamp '2024-12-01 00:00'" if pre else "timestamptz '2024-12-01 00:00+00'"
    sql = FILL.format(
        n=n,
        ts0=ts0,
        import_status_cols=', "status", "processedAt"' if pre else "",
        import_status_vals=", 'DONE', t + interval '2 hours'" if pre else "",
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]
        if not pre:
            conn.execute(STATUS_ROWS)  # type: ignore[arg-type]
        conn.execute("ANALYZE")
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="legacy sessions (default 100000)")
    parser.add_argument("--variant", choices=["refactored", "pre-refactor"], default="refactored")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None, help="default: automatic")
    parser.add_argument("--profile", action="store_true", help="cProfile the migration")
    args = parser.parse_args()

    with pg_database() as legacy, pg_database() as target:
        print(f"filling the legacy database ({args.variant}): {args.n} sessions × 10 messages…")
        print(f"  filled in {fill(legacy, args.n, args.variant):.1f}s")
        with Runtime.open(target, create=True) as rt:
            options = MigrationOptions(
                batch_size=args.batch_size,
                catch_up=False,
                database_url=target,
                workers=args.workers,
            )
            profiler = cProfile.Profile() if args.profile else None
            t = time.perf_counter()
            if profiler:
                profiler.enable()
            report = migrate_legacy(legacy, rt.app, rt.runner, utc_now, options)
            if profiler:
                profiler.disable()
            migrate_s = time.perf_counter() - t
            t = time.perf_counter()
            catch_up(rt.runner)  # what the command does at the end
            catch_up_s = time.perf_counter() - t
        assert report.sessions.migrated == args.n, report.sessions
        print(f"  migrated {report.sessions.migrated} sessions, {report.sessions.events} events")
        print(f"  workers: {args.workers or 'automatic'}")
        for line in report.final_status:
            print(f"  {line}")
        print(
            f"migration: {migrate_s:.1f}s, {args.n / migrate_s:.0f} sessions/s, "
            f"{report.sessions.events / migrate_s:.0f} events/s"
        )
        print(f"projection catch-up afterwards (as the command does it): {catch_up_s:.1f}s")
        print(f"total (migration + catch-up): {migrate_s + catch_up_s:.1f}s")
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)


if __name__ == "__main__":
    main()
