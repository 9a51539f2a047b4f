"""Projections built from the log beside the live ones, never among them: a schema of its
own on PostgreSQL (the shadow engine's ``search_path`` points there, so even raw SQL such as
COPY writes into it), a temporary file on SQLite. `projections verify` compares a shadow with
the live tables; `projections rebuild --swap` puts it in their place in one transaction, so
reports never see a half-built table while the daemons keep running."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, insert, select, text

from projections.runner import Projection, ProjectionRunner
from projections.schema import metadata, projection_tracking
from projections.store import WRITE, create_schema, make_engine


@contextmanager
def shadow_engine(live: Engine) -> Iterator[Engine]:
    """An engine whose projection tables are empty shadows of the live ones, dropped after."""
    if live.dialect.name != "postgresql":
        with tempfile.TemporaryDirectory(prefix="livedash-verify-") as folder:
            engine = make_engine(f"sqlite:///{Path(folder) / 'shadow.db'}")
            try:
                yield engine
            finally:
                engine.dispose()
        return
    schema = f"livedash_shadow_{uuid.uuid4().hex[:12]}"
    with live.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine = make_engine(live.url.render_as_string(hide_password=False), search_path=schema)
    try:
        yield engine
    finally:
        engine.dispose()
        with live.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def swap_in(live: ProjectionRunner, projections: Sequence[Projection]) -> dict[str, int]:
    """Builds ``projections`` (fresh instances) from the whole log in a shadow, then replaces
    the live tables with it in one transaction; returns the events each one applied.

    The swap holds the tracking rows' lock, which every runner takes to apply a page, so no
    page lands half on the old tables; a runner that had read ahead finds the position moved
    under that lock and reads again from the shadow's position."""
    names = [p.name for p in projections]
    with shadow_engine(live.engine) as engine:
        create_schema(engine)
        shadow = ProjectionRunner(engine, live.recorder, live.mapper, list(projections))
        try:
            shadow.catch_up()
            with engine.connect() as conn:
                tracking = {
                    r.name: r
                    for r in conn.execute(
                        select(projection_tracking).where(projection_tracking.c.name.in_(names))
                    )
                }
            tables = [t for p in projections for t in p.tables]
            if live.engine.dialect.name == "postgresql":
                _swap_postgres(live.engine, engine, tables, tracking)
            else:
                _swap_sqlite(live.engine, engine, tables, tracking)
        finally:
            shadow.close()
    live.moved(names)
    return {n: int(tracking[n].events_applied) if n in tracking else 0 for n in names}


def _move_tracking(conn: Connection, tracking: dict[str, Row[Any]]) -> None:
    """The live positions become the shadow's: its tables are as far as it read."""
    names = list(tracking)
    conn.execute(delete(projection_tracking).where(projection_tracking.c.name.in_(names)))
    if tracking:
        conn.execute(insert(projection_tracking), [dict(r._mapping) for r in tracking.values()])


def _lock_tracking(conn: Connection) -> None:
    conn.execute(select(projection_tracking.c.name).with_for_update())


def _swap_postgres(
    live: Engine, shadow: Engine, tables: list[str], tracking: dict[str, Row[Any]]
) -> None:
    with shadow.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    with live.connect().execution_options(**WRITE) as conn, conn.begin():
        _lock_tracking(conn)
        home = conn.execute(text("SELECT current_schema()")).scalar_one()
        for table in tables:
            conn.exec_driver_sql(f'DROP TABLE "{home}"."{table}"')
            conn.exec_driver_sql(f'ALTER TABLE "{schema}"."{table}" SET SCHEMA "{home}"')
        _move_tracking(conn, tracking)


def _swap_sqlite(
    live: Engine, shadow: Engine, tables: list[str], tracking: dict[str, Row[Any]]
) -> None:
    path = shadow.url.database
    with live.connect().execution_options(**WRITE) as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute("ATTACH DATABASE ? AS shadow", (path,))  # outside any transaction
        try:
            with conn.begin():
                for table in tables:
                    columns = ", ".join(f'"{c.name}"' for c in metadata.tables[table].columns)
                    conn.exec_driver_sql(f'DELETE FROM main."{table}"')
                    conn.exec_driver_sql(
                        f'INSERT INTO main."{table}" ({columns}) '
                        f'SELECT {columns} FROM shadow."{table}"'
                    )
                _move_tracking(conn, tracking)
        finally:
            raw.execute("DETACH DATABASE shadow")
