"""What `livedash status --at T` costs on a large log, against a full fold of the log to T.

    python scripts/bench_status_at.py --sessions 1000000            # fresh PostgreSQL database
    python scripts/bench_status_at.py --sessions 1000000 --url URL  # seed once, measure again

Seeds N sessions over 30 days in 10 companies (each through the five stages over a few
minutes, one in seven with a retried fetch, one in thirteen left stuck in progress or failed
for good), catches up the event index and the overview history, then for several moments T
(mid-second, so T's own second is replayed from the log):

- the median time of the `--at` answer as the command computes it (one snapshot: prefix sums
  of the overview history plus the replay of T's second), and once through the real command;
- one pass over the whole log that folds every session with the aggregate itself, cut at each
  T as `history --at` cuts it: the reference the answers must equal, and its time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from benchlib import machine, pg_database, source_row

from cli.runtime import Runtime, events_table
from domain.company import Company
from domain.session import Session
from domain.stages import STAGE_ORDER, Stage
from projections.event_index import EVENT_INDEX
from projections.overview_at import LogSource, snapshot
from projections.overview_history import OVERVIEW_HISTORY
from projections.overview_report import status_at
from projections.status import buckets

COMPANIES = 10
DAYS = 30
T0 = datetime(2026, 11, 1, tzinfo=UTC)
LATER = (Stage.SESSION_CREATION, Stage.AI_ANALYSIS, Stage.QUESTION_EXTRACTION)
REPO = Path(__file__).resolve().parent.parent


def seed(rt: Runtime, sessions: int, batch: int = 200) -> int:
    """``sessions`` whole sessions, a minute or so between their stages; returns events."""
    companies = []
    for c in range(COMPANIES):
        company = Company.register(f"Company-{c}", f"https://csv.example/{c}.csv", T0)
        rt.app.register_company(company)
        companies.append(company.id)
    step = timedelta(days=DAYS) / sessions
    minute = timedelta(minutes=1)
    written, pending = 0, []
    for i in range(sessions):
        now = T0 + step * i
        s = Session.import_row(companies[i % COMPANIES], source_row(i, now), "bench.csv", now)
        fetch = Stage.TRANSCRIPT_FETCH
        now += minute
        a = s.start_stage(fetch, f"w-{i % 4}", now + 5 * minute, now)
        if i % 7 == 0:
            now += minute
            s.fail_stage(fetch, a, "timeout", "bench failure", True, now + minute, now)
            now += minute
            a = s.start_stage(fetch, f"w-{(i + 1) % 4}", now + 5 * minute, now)
        now += minute
        s.complete_stage(fetch, a, now, {"size": 100})
        for k, stage in enumerate(LATER):
            now += minute
            a = s.start_stage(stage, f"w-{i % 4}", now + 5 * minute, now)
            if i % 13 == k + 1:  # stuck: still running, or failed for good
                if k:
                    s.fail_stage(stage, a, "bad_output", "bench", False, None, now + minute)
                break
            now += minute
            s.complete_stage(stage, a, now, {"bench": True})
        written += len(s.pending_events)
        pending.append(s)
        if len(pending) >= batch:
            rt.app.save_batch(pending)
            pending = []
    if pending:
        rt.app.save_batch(pending)
    return written


def log_source(rt: Runtime) -> LogSource:
    return LogSource(events_table(rt.config), rt.config.schema or None, rt.app.mapper)


def answer(rt: Runtime, at: datetime) -> tuple[Counter[tuple[str, str]], int]:
    report = None
    with snapshot(rt.engine) as conn:
        report = status_at(conn, log_source(rt), at)
    found: Counter[tuple[str, str]] = Counter()
    for stage, counts in report.stages.items():
        found.update({(stage, status): n for status, n in counts.items() if n})
    for stage, needs in report.needs_processing.items():
        if needs.failed_retrying:
            found[(stage, "RETRY_SCHEDULED")] = needs.failed_retrying
    return found, report.position


def reference(rt: Runtime, moments: list[datetime], upto: int) -> list[Counter[tuple[str, str]]]:
    """One pass over the log up to ``upto``: every session folded by the aggregate (`mutate`),
    its state taken for each T just before its first event stamped after T. The seeding
    stores each session's events together, so a session is done when the next one begins."""
    found = [Counter[tuple[str, str]]() for _ in moments]
    session: Any = None
    cut: list[bool] = []
    done: set[UUID] = set()

    def count(into: Counter[tuple[str, str]]) -> None:
        for stage in STAGE_ORDER:
            for b in buckets(session.stages[stage]):
                into[(stage.value, b)] += 1

    def finish() -> None:
        if session is not None:
            done.add(session.id)
            for i, stopped in enumerate(cut):
                if not stopped:
                    count(found[i])

    for event in _session_events(rt, upto):
        if session is None or event.originator_id != session.id:
            finish()
            if event.originator_id in done:
                raise SystemExit("the log interleaves sessions: this reference needs a seed")
            session, cut = None, [False] * len(moments)
        for i, at in enumerate(moments):
            if not cut[i] and event.timestamp > at:
                cut[i] = True
                if session is not None:
                    count(found[i])
        session = event.mutate(session)
    finish()
    return found


def _session_events(rt: Runtime, upto: int) -> Iterator[Any]:
    start = 0
    while start < upto:
        notes = rt.app.recorder.select_notifications(
            start=start, limit=2000, inclusive_of_start=False, stop=upto
        )
        if not notes:
            return
        for n in notes:
            event = rt.app.mapper.to_domain_event(n)
            if isinstance(event, Session.Event):
                yield event
        start = notes[-1].id


@contextmanager
def database(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    with pg_database() as fresh:
        yield fresh


def cli_seconds(url: str, at: datetime) -> float:
    """Wall time of the real command (Python start-up and the catch-up check included)."""
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cli.main", "status", "--at", at.isoformat(), "--json"],
        cwd=REPO,
        env={"LIVEDASH_DATABASE_URL": url, "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--url", help="a database to use (seeded only when its log is empty)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--moments", type=int, default=6)
    parser.add_argument("--cli", action="store_true", help="also time the real command")
    parser.add_argument("--no-reference", action="store_true", help="skip the full fold")
    args = parser.parse_args()
    print(machine())
    with database(args.url) as url, Runtime.open(url, create=True) as rt:
        if not rt.runner.head():
            began = time.perf_counter()
            written = seed(rt, args.sessions)
            print(f"seeded {args.sessions:,} sessions, {written:,} events in "
                  f"{time.perf_counter() - began:.0f} s")  # fmt: skip
        for name in (EVENT_INDEX, OVERVIEW_HISTORY):
            began = time.perf_counter()
            applied = rt.runner.catch_up([name])
            if applied:
                rate = applied / (time.perf_counter() - began)
                print(f"{name} caught up: {applied:,} events, {rate:,.0f} events/s")
        if rt.engine.dialect.name == "postgresql":
            with rt.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for table in ("overview_deltas", "overview_activity", "event_index"):
                    conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
        span = timedelta(days=DAYS + 1)
        moments = [
            T0 + span * (k + 1) / (args.moments + 1) + timedelta(microseconds=123_457)
            for k in range(args.moments)
        ]
        answers, position = [], 0
        print(f"{'T':34s} {'median ms':>10s} {'max ms':>8s} {'sessions':>9s}")
        for at in moments:
            found, position = answer(rt, at)
            samples = []
            for _ in range(args.runs):
                began = time.perf_counter()
                answer(rt, at)
                samples.append((time.perf_counter() - began) * 1000)
            answers.append(found)
            total = sum(n for (stage, _), n in found.items() if stage == "CSV_IMPORT")
            print(f"{at.isoformat():34s} {statistics.median(samples):10.1f} "
                  f"{max(samples):8.1f} {total:9,d}")  # fmt: skip
        if args.cli:
            rt.runner.catch_up()  # the command catches every projection up before it answers
            seconds = cli_seconds(url, moments[-1])
            print(f"through the command (Python start-up included): {seconds:.2f} s")
        if args.no_reference:
            return
        began = time.perf_counter()
        expected = reference(rt, moments, position)
        seconds = time.perf_counter() - began
        same = all(a == e for a, e in zip(answers, expected, strict=True))
        print(f"full fold of the log to each T (one pass for all {len(moments)}): "
              f"{seconds:.1f} s; answers equal the fold: {'yes' if same else 'NO'}")  # fmt: skip
        if not same:
            for at, a, e in zip(moments, answers, expected, strict=True):
                if a != e:
                    print(at, "answer - fold:", dict(a - e), "fold - answer:", dict(e - a))
            raise SystemExit(1)


if __name__ == "__main__":
    main()
