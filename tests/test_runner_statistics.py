"""The projection runner refreshes PostgreSQL's planner statistics as its tables grow from
empty, so the daemon's due-work queries do not run on the "one row" estimate."""

from __future__ import annotations

from uuid import uuid4

from domain.session import Session
from tests.factories import Clock, row
from tests.harness import runtime


def _reltuples(rt: object, table: str) -> float:
    with rt.engine.connect() as conn:  # type: ignore[attr-defined]
        return float(
            conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE relname = %(t)s", {"t": table}
            ).scalar()
        )


def test_tables_are_analyzed_once_they_have_grown(pg_url: str) -> None:
    clock = Clock()
    company = uuid4()
    with runtime(pg_url) as rt:
        few = [
            Session.import_row(company, row(external_id=f"a{i}"), "t.csv", clock())
            for i in range(50)
        ]
        rt.app.save_batch(few)
        rt.runner.catch_up(["session_status"])
        assert _reltuples(rt, "session_stage_status") < 0, "50 events must not trigger ANALYZE"
        assert _reltuples(rt, "livedash_events") < 0

        many = [
            Session.import_row(company, row(external_id=f"b{i}"), "t.csv", clock())
            for i in range(1_200)
        ]
        for i in range(0, len(many), 400):
            rt.app.save_batch(many[i : i + 400])
        rt.runner.catch_up(["session_status"])
        # ANALYZE ran: the estimate is the real row count (1,250 sessions x 5 stages).
        assert _reltuples(rt, "session_stage_status") == 1_250 * 5
        assert _reltuples(rt, "sessions") == 1_250
        # The event table too: the next page's read must not be planned for a third of it.
        assert _reltuples(rt, "livedash_events") == 1_250
