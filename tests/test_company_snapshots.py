"""A company polled every 15 minutes gains 96 import events a day; loading it must not grow
with them. Snapshots every 50 events keep a load to one snapshot and fewer than 50 events, and
the loaded state is exactly the fold of every event, on both databases."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from domain.company import Company, CompanyStatus, ImportRun
from domain.csv_rows import RowRejection
from projections.queries import list_import_runs
from store.application import LiveDashApp
from tests.factories import Clock
from tests.harness import runtime

INTERVAL = LiveDashApp.snapshotting_intervals[Company]


def fold(app: LiveDashApp, company_id: UUID) -> Company:
    """The aggregate from every one of its events, without any snapshot."""
    aggregate: Any = None
    for event in app.events.get(company_id):
        aggregate = event.mutate(aggregate)
    assert isinstance(aggregate, Company)
    return aggregate


def state(company: Company) -> dict[str, Any]:
    return {k: v for k, v in vars(company).items() if not k.startswith("_")} | {
        "id": company.id,
        "version": company.version,
    }


def _run(clock: Clock, outcome: str, **fields: Any) -> ImportRun:
    now = clock.advance(900)
    return ImportRun.model_validate(
        {
            "run_id": uuid4(),
            "source": "https://csv.example/export.csv",
            "started_at": now,
            "finished_at": now,
            "outcome": outcome,
            **fields,
        }
    )


def test_a_loaded_company_is_the_fold_of_its_events_and_reads_a_bounded_tail(
    database_url: str,
) -> None:
    clock = Clock()
    rejections = [
        RowRejection(row_number=i, raw_line="x" * 500, reason="expected 16 columns, found 1")
        for i in range(1, 301)
    ]
    with runtime(database_url) as rt:
        company = Company.register("Polled", "https://csv.example/export.csv", clock())
        rt.app.register_company(company)
        polls = 3 * INTERVAL + 17
        etag = None
        for i in range(polls):
            c = rt.app.get_company(company.id)
            if i % 40 == 5:
                etag = f'"v{i}"'
                run = _run(
                    clock, "ok", rows_seen=310, new=10, rejected=300, rejections=rejections,
                    etag=etag, content_sha256=f"{i:064x}",
                )  # fmt: skip
            elif i % 40 == 20:
                etag = f'"e{i}"'
                run = _run(clock, "empty", etag=etag, content_sha256=f"{i + 1:064x}")
            else:
                run = _run(clock, "not_modified", http_status=304)
            rt.app.record_import(c, run)
            if i == 2 * INTERVAL + 3:
                rt.app.change_company_status(
                    "Polled", CompanyStatus.SUSPENDED, "unpaid", "ops", clock()
                )
            if i == 2 * INTERVAL + 9:
                rt.app.change_company_status("Polled", CompanyStatus.ACTIVE, "paid", "ops", clock())

        loaded = rt.app.get_company(company.id)
        assert loaded.version == polls + 3
        assert state(loaded) == state(fold(rt.app, company.id))
        assert loaded.etag == etag and loaded.status is CompanyStatus.ACTIVE

        # The load read the latest snapshot and only the events after it.
        assert rt.app.snapshots is not None
        snapshot = next(iter(rt.app.snapshots.get(company.id, desc=True, limit=1)))
        assert snapshot.originator_version == (loaded.version // INTERVAL) * INTERVAL
        tail = list(rt.app.events.get(company.id, gt=snapshot.originator_version))
        assert len(tail) < INTERVAL

        # The aggregate keeps the last run without its rejections (it is loaded on every
        # level tick); `imports` still shows them, from the events.
        with_rejections = rt.app.get_company(company.id)
        rt.app.record_import(
            with_rejections,
            _run(clock, "ok", rows_seen=300, rejected=300, rejections=rejections),
        )
        reloaded = rt.app.get_company(company.id)
        assert reloaded.last_import is not None and reloaded.last_import.rejected == 300
        assert reloaded.last_import.rejections == []
        assert state(reloaded) == state(fold(rt.app, company.id))
        rt.runner.catch_up()
        with rt.engine.connect() as conn:
            shown = list_import_runs(conn, company.id, limit=1, rejections=True)[0]
        assert len(shown.rejections) == 300
