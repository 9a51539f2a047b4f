"""What loading a company costs after many polls of an unchanged CSV source.

    python scripts/bench_company_load.py --polls 10000 --databases sqlite,postgres

Records ``--polls`` `not_modified` import runs on one company (one `ImportRecorded` event
each, as the daemon's scheduled import does every 15 minutes), then times
`LiveDashApp.get_company` (the latest snapshot and the events after it) against a fold of
every event (what a load costs without snapshots).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any
from uuid import UUID, uuid4

from benchlib import database

from cli.runtime import Runtime
from domain.company import Company, ImportRun
from processors.clock import utc_now
from store.application import LiveDashApp


def fold(app: LiveDashApp, company_id: UUID) -> Company:
    aggregate: Any = None
    for event in app.events.get(company_id):
        aggregate = event.mutate(aggregate)
    assert isinstance(aggregate, Company)
    return aggregate


def median_ms(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def measure(kind: str, polls: int, repeats: int) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        database(kind, tmp) as url,
        Runtime.open(url, create=True) as rt,
    ):
        company = Company.register("Polled", "https://csv.example/export.csv", utc_now())
        rt.app.register_company(company)
        for _ in range(polls):
            c = rt.app.get_company(company.id)
            now = utc_now()
            run = ImportRun(
                run_id=uuid4(),
                source=c.csv_url,
                started_at=now,
                finished_at=now,
                outcome="not_modified",
                http_status=304,
            )
            rt.app.record_import(c, run)
        assert rt.app.get_company(company.id).version == polls + 1
        return {
            "get_company (snapshot + tail)": median_ms(
                lambda: rt.app.get_company(company.id), repeats
            ),
            "fold of every event": median_ms(lambda: fold(rt.app, company.id), repeats),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--databases", default="sqlite,postgres")
    args = parser.parse_args()
    for kind in args.databases.split(","):
        for label, ms in measure(kind, args.polls, args.repeats).items():
            print(f"{kind:9s} {args.polls:>7,} polls  load via {label:30s} {ms:8.2f} ms")


if __name__ == "__main__":
    main()
