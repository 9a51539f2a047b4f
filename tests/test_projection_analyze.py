"""`analyze`: fresh planner statistics for the projection tables (the legacy migration's catch-up
runs it between slices; PostgreSQL only)."""

from __future__ import annotations

from sqlalchemy import text

from projections.schema import metadata
from projections.store import analyze
from tests.harness import runtime


def test_analyze_gives_every_projection_table_statistics(database_url: str) -> None:
    with runtime(database_url) as rt:
        analyze(rt.engine)  # SQLite: nothing to do, and nothing fails
        if rt.engine.dialect.name != "postgresql":
            return
        names = sorted(t.name for t in metadata.sorted_tables)
        with rt.engine.connect() as conn:
            analysed = {
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT relname FROM pg_stat_user_tables "
                        "WHERE last_analyze IS NOT NULL AND relname = ANY(:names)"
                    ),
                    {"names": names},
                )
            }
        assert analysed == set(names)
