"""What `livedash events` costs on a large log: filtered queries and the index's catch-up.

    python scripts/bench_events.py --events 1000000
    python scripts/bench_events.py --events 10000000 --keep          # prints the database URL
    python scripts/bench_events.py --database-url URL --rebuild all  # reuse it: no rewrite

Writes about N events on a fresh PostgreSQL database (10 companies; sessions that go through
all five stages over 30 days, one in seven with a failed and retried transcript fetch), then:

- the raw decode rate: the whole log read in pages and decoded, nothing applied (reference);
- the event index's catch-up rate over the same log (the projection `livedash events` reads);
- the median time of a few filtered queries as the command runs them (index query, reading
  and decoding the page's events, the external ids and company names), 100 events each;
- with ``--rebuild``, each named projection rebuilt from position zero, as
  ``livedash projections rebuild`` does it, as a rate and a share of the raw decode rate.

The queries need only the index and the two projections they read names from
(``session_status``, ``companies``); the others are caught up only when rebuilt.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from benchlib import create_pg_database, machine, pg_database, source_row

from cli.runtime import Runtime
from domain.company import Company
from domain.session import Session
from domain.stages import Stage
from processors.service.events import query_events
from projections.companies import CompanyProjection
from projections.event_index import EVENT_INDEX
from projections.event_queries import EventQuery
from projections.status import StatusProjection

COMPANIES = 10
DAYS = 30
T0 = datetime(2026, 11, 1, tzinfo=UTC)
ERRORS = ("http_404", "timeout", "lease_expired")
LATER = (Stage.SESSION_CREATION, Stage.AI_ANALYSIS, Stage.QUESTION_EXTRACTION)


def write_log(rt: Runtime, events: int, batch: int = 2000) -> tuple[int, list[uuid.UUID]]:
    """About ``events`` events (whole sessions); returns the count and the company ids."""
    companies = []
    for c in range(COMPANIES):
        company = Company.register(f"Company-{c}", f"https://csv.example/{c}.csv", T0)
        rt.app.register_company(company)
        companies.append(company.id)
    sessions = max(1, events // 10)  # ~10 events a session
    step = timedelta(days=DAYS) / sessions
    written = 0
    pending: list[Session] = []
    for i in range(sessions):
        now = T0 + step * i
        s = Session.import_row(companies[i % COMPANIES], source_row(i, now), "bench.csv", now)
        lease = now + timedelta(minutes=5)
        fetch = Stage.TRANSCRIPT_FETCH
        a = s.start_stage(fetch, f"w-{i % 4}", lease, now)
        if i % 7 == 0:  # 7 and the 10 companies are coprime: every company has failures
            error = ERRORS[(i // 7) % len(ERRORS)]
            s.fail_stage(fetch, a, error, "bench failure", True, now, now)
            a = s.start_stage(fetch, f"w-{(i + 1) % 4}", lease, now)
        s.complete_stage(fetch, a, now, {"size": 100})
        for stage in LATER:
            a = s.start_stage(stage, f"w-{i % 4}", lease, now)
            s.complete_stage(stage, a, now, {"bench": True})
        written += len(s.pending_events)
        pending.append(s)
        if len(pending) >= batch // 10:
            rt.app.save_batch(pending)
            pending = []
    if pending:
        rt.app.save_batch(pending)
    return written, companies


def raw_decode_rate(rt: Runtime, page: int) -> float:
    """Events a second: every page read and decoded, nothing applied."""
    began, start, count = time.perf_counter(), 0, 0
    while True:
        notes = rt.app.recorder.select_notifications(
            start=start, limit=page, inclusive_of_start=False
        )
        if not notes:
            break
        for n in notes:
            rt.app.mapper.to_domain_event(n)
        count += len(notes)
        start = notes[-1].id
    return count / (time.perf_counter() - began)


def timed(rt: Runtime, query: EventQuery, runs: int) -> tuple[float, int]:
    """Median milliseconds over ``runs`` (after one warm-up) and the number of events found."""
    found = len(query_events(rt.app, rt.engine, query))
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        query_events(rt.app, rt.engine, query)
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples), found


def queries(rt: Runtime, companies: list[uuid.UUID]) -> dict[str, Callable[[], EventQuery]]:
    some = companies[3]
    with rt.engine.connect() as conn:
        session = conn.exec_driver_sql(
            "SELECT session_id FROM event_index WHERE type = 'Imported' "
            "ORDER BY position OFFSET (SELECT count(*) / 20 FROM event_index) LIMIT 1"
        ).scalar_one()
    day = T0 + timedelta(days=3)  # "last Tuesday": far from the newest events
    return {
        "newest 100, no filter": lambda: EventQuery(),
        "company + type StageFailed": lambda: EventQuery(company_id=some, types=("StageFailed",)),
        "company + 2 types": lambda: EventQuery(
            company_id=some, types=("StageFailed", "StageReset")
        ),
        "company + type + one day, 27 days back": lambda: EventQuery(
            company_id=some,
            types=("StageFailed",),
            since_time=day,
            until_time=day + timedelta(days=1),
        ),
        "error type + one day, 27 days back": lambda: EventQuery(
            error_type="timeout", since_time=day, until_time=day + timedelta(days=1)
        ),
        "one session": lambda: EventQuery(session_id=session),
        "worker + stage": lambda: EventQuery(worker="w-2", stages=("AI_ANALYSIS",)),
        "company, oldest first": lambda: EventQuery(company_id=some, oldest_first=True),
    }


def sizes(rt: Runtime) -> dict[str, Any]:
    with rt.engine.connect() as conn:
        index = conn.exec_driver_sql("SELECT pg_total_relation_size('event_index')").scalar_one()
        log = conn.exec_driver_sql("SELECT pg_total_relation_size('livedash_events')").scalar_one()
    return {"event_index_mb": index / 2**20, "log_mb": log / 2**20}


NAMES_FOR_QUERIES = (StatusProjection.name, CompanyProjection.name)


@contextlib.contextmanager
def bench_database(url: str | None, keep: bool) -> Iterator[str]:
    """A fresh database (dropped afterwards unless ``keep``), or the given one as it is."""
    if url is not None:
        yield url
    elif keep:
        made = create_pg_database()
        print(f"kept database: {made}")
        yield made
    else:
        with pg_database() as made:
            yield made


def log_size(rt: Runtime) -> int:
    return rt.app.recorder.max_notification_id() or 0


def catch_up_timed(rt: Runtime, names: list[str]) -> None:
    for name in names:
        began = time.perf_counter()
        applied = rt.runner.catch_up([name])
        spent = time.perf_counter() - began
        rate = applied / spent if spent > 0 and applied else 0.0
        print(f"caught up {name}: {applied:,} events in {spent:.0f} s ({rate:,.0f} events/s)")


def rebuild_timed(rt: Runtime, names: list[str], raw: float, total: int) -> None:
    """Each projection from position zero; its rate is over the whole log it had to read."""
    print(
        f"{'rebuild (whole log)':24s} {'seconds':>8s} {'applied':>11s} {'log ev/s':>9s} {'of raw':>7s}"
    )
    for name in names:
        began = time.perf_counter()
        applied = rt.runner.rebuild(name)
        spent = time.perf_counter() - began
        rate = total / spent
        print(f"{name:24s} {spent:8.0f} {applied:11,d} {rate:9,.0f} {rate / raw:7.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--page-size", type=int, default=2000)
    parser.add_argument("--database-url", help="reuse a database a --keep run left")
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    parser.add_argument(
        "--rebuild", default="", help="projections to rebuild afterwards, comma-separated, or all"
    )
    args = parser.parse_args()
    print(machine())
    with (
        bench_database(args.database_url, args.keep) as url,
        Runtime.open(url, create=args.database_url is None) as rt,
    ):
        companies: list[uuid.UUID] = []
        if args.database_url is None:
            began = time.perf_counter()
            written, companies = write_log(rt, args.events)
            print(f"wrote {written:,} events in {time.perf_counter() - began:.0f} s")
        total = log_size(rt)
        print(f"log: {total:,} events")
        rt.runner.page_size = args.page_size
        raw = raw_decode_rate(rt, args.page_size)
        print(f"raw decode (read + decode, nothing applied): {raw:10,.0f} events/s")
        began = time.perf_counter()
        indexed = rt.runner.catch_up([EVENT_INDEX])
        spent = time.perf_counter() - began
        if indexed:
            index_rate = indexed / spent
            print(
                f"event index catch-up:                        {index_rate:10,.0f} events/s "
                f"({index_rate / raw:.0%} of raw decode), {indexed:,} events"
            )
        catch_up_timed(rt, list(NAMES_FOR_QUERIES))
        with rt.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE event_index")
            if not companies:
                companies = [
                    uuid.UUID(str(c))
                    for c in conn.exec_driver_sql(
                        "SELECT company_id FROM companies ORDER BY name"
                    ).scalars()
                ]
        print({k: round(v, 1) for k, v in sizes(rt).items()})
        print(f"{'query (limit 100)':42s} {'median ms':>10s} {'found':>6s}")
        for label, make in queries(rt, companies).items():
            ms, found = timed(rt, make(), args.runs)
            print(f"{label:42s} {ms:10.1f} {found:6d}")
        if args.rebuild:
            names = (
                list(rt.runner.projections) if args.rebuild == "all" else args.rebuild.split(",")
            )
            rebuild_timed(rt, names, raw, total)


if __name__ == "__main__":
    main()
