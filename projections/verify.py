"""`projections verify`: rebuild every projection from the log into shadow tables and compare
them with the live ones, row by row.

The shadow (projections/shadow.py) is built from the whole log; both sides are read in
primary-key order and merged, so memory stays flat however big the tables are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, String, Table, select

from projections.runner import Projection, ProjectionRunner
from projections.schema import metadata, projection_tracking
from projections.shadow import shadow_engine
from projections.store import create_schema

SHOWN = 20
"""Differences kept per table for the report (all are counted)."""


@dataclass(frozen=True)
class Difference:
    table: str
    key: dict[str, Any]
    kind: str
    """``missing`` (in the log's rebuild, not in the live table), ``extra`` (live only) or
    ``differs`` (both, with other values in ``columns``)."""
    columns: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """column -> (live value, rebuilt value)"""


@dataclass
class TableCheck:
    projection: str
    table: str
    rows_live: int = 0
    rows_rebuilt: int = 0
    differences: int = 0
    shown: list[Difference] = field(default_factory=list)


@dataclass(frozen=True)
class Verification:
    position: int
    """The log position both sides were compared at."""
    tables: list[TableCheck]

    @property
    def identical(self) -> bool:
        return all(t.differences == 0 for t in self.tables)


class LogMoved(Exception):
    """The live projections kept moving past the shadow: the log grows faster than we read."""


def verify(
    live: ProjectionRunner,
    build: Callable[[], Sequence[Projection]],
    attempts: int = 5,
) -> Verification:
    """Catches the live projections up, rebuilds fresh ones (from ``build``) in a shadow
    from the whole log, and compares table by table once both stand at the same position.

    With daemons writing, the live side may move on while the shadow is built: the shadow
    catches up again, ``attempts`` times at most, then LogMoved.
    """
    with shadow_engine(live.engine) as engine:
        create_schema(engine)
        shadow = ProjectionRunner(engine, live.recorder, live.mapper, list(build()))
        try:
            for _ in range(attempts):
                live.catch_up()
                shadow.catch_up()
                with live.engine.connect() as lconn, engine.connect() as sconn:
                    positions = _positions(lconn)
                    if positions == _positions(sconn):
                        return Verification(
                            max(positions.values(), default=0),
                            [_compare(name, t, lconn, sconn) for name, t in _tables(shadow)],
                        )
        finally:
            shadow.close()
    raise LogMoved(f"the live projections moved on {attempts} times while the shadow was built")


def _positions(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(projection_tracking.c.name, projection_tracking.c.position))
    return {r[0]: int(r[1]) for r in rows}


def _tables(runner: ProjectionRunner) -> Iterator[tuple[str, Table]]:
    for name, projection in runner.projections.items():
        for table in projection.tables:
            yield name, metadata.tables[table]


def _compare(projection: str, table: Table, live: Connection, shadow: Connection) -> TableCheck:
    check = TableCheck(projection, table.name)
    key = list(table.primary_key.columns) or list(table.columns)
    names = [c.name for c in table.columns]
    key_names = [c.name for c in key]
    query = select(table).order_by(*(_ordered(c, live) for c in key))
    left = (dict(r._mapping) for r in live.execution_options(yield_per=2000).execute(query))
    right = (dict(r._mapping) for r in shadow.execution_options(yield_per=2000).execute(query))
    for kind, a, b in _merge(left, right, key_names):
        check.rows_live += a is not None
        check.rows_rebuilt += b is not None
        if kind == "same":
            continue
        check.differences += 1
        if len(check.shown) < SHOWN:
            row = a if a is not None else b
            assert row is not None
            changed = {}
            if a is not None and b is not None:
                changed = {n: (a[n], b[n]) for n in names if a[n] != b[n]}
            check.shown.append(
                Difference(table.name, {k: row[k] for k in key_names}, kind, changed)
            )
    return check


Row = dict[str, Any]


def _merge(
    left: Iterator[Row], right: Iterator[Row], key: list[str]
) -> Iterator[tuple[str, Row | None, Row | None]]:
    """Walks two key-ordered streams together: ('same'|'differs', a, b), ('extra', a, None)
    for a live row the rebuild lacks, ('missing', None, b) for the reverse."""
    a, b = next(left, None), next(right, None)
    while a is not None or b is not None:
        ka = _key(a, key) if a is not None else None
        kb = _key(b, key) if b is not None else None
        if kb is None or (ka is not None and ka < kb):
            yield "extra", a, None
            a = next(left, None)
        elif ka is None or kb < ka:
            yield "missing", None, b
            b = next(right, None)
        else:
            yield ("same" if a == b else "differs"), a, b
            a, b = next(left, None), next(right, None)


def _ordered(column: Any, conn: Connection) -> Any:
    """The key's order as Python compares it: code points (the "C" collation on PostgreSQL)
    and NULL first on both databases."""
    if conn.dialect.name == "postgresql" and isinstance(column.type, String):
        column = column.collate("C")
    return column.asc().nulls_first()


def _key(row: Row, key: list[str]) -> tuple[Any, ...]:
    # None sorts first, as both databases order NULLs in a key (keys are rarely nullable).
    return tuple((row[k] is not None, row[k]) for k in key)
