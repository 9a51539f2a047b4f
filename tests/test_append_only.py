"""The event log is append-only: UPDATE, DELETE (and TRUNCATE on PostgreSQL) of stored events
are refused by the database itself, while appending goes on."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, table, text

from cli.runtime import events_table
from domain.company import Company
from processors.clock import utc_now
from store.append_only import REFUSED
from tests.harness import runtime


def _tamper(url: str, statement: str) -> str:
    with runtime(url) as rt:
        name = events_table(rt.config)
        with pytest.raises(Exception) as refused, rt.engine.begin() as conn:
            conn.execute(text(statement.format(table=name)))
        with rt.engine.connect() as conn:
            left = conn.execute(select(func.count()).select_from(table(name))).scalar_one()
        assert left > 0, "nothing was removed"
    return str(refused.value)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {table} SET topic = 'forged'",
        "DELETE FROM {table}",
        "DELETE FROM {table} WHERE originator_version = 1",
    ],
)
def test_stored_events_cannot_be_changed_or_removed(database_url: str, statement: str) -> None:
    with runtime(database_url) as rt:
        rt.app.register_company(Company.register("Acme", "https://csv.example/a.csv", utc_now()))
    assert REFUSED in _tamper(database_url, statement)
    with runtime(database_url) as rt:  # appending still works
        rt.app.register_company(Company.register("Beta", "https://csv.example/b.csv", utc_now()))
        with rt.engine.connect() as conn:
            stored = conn.execute(
                select(func.count()).select_from(table(events_table(rt.config)))
            ).scalar_one()
        assert stored == 2


def test_truncate_is_refused_on_postgresql(pg_url: str) -> None:
    with runtime(pg_url) as rt:
        rt.app.register_company(Company.register("Acme", "https://csv.example/a.csv", utc_now()))
    assert REFUSED in _tamper(pg_url, "TRUNCATE {table}")
