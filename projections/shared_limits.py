"""Limits that hold for the whole fleet, kept in PostgreSQL.

Each limit is one row of `shared_limits`: a token bucket in its virtual-scheduling (GCRA) form,
whose ``tat`` is the database time at which the bucket would be empty again. A daemon does not
ask the database for every request: it takes a *grant*, a stretch of the bucket's timeline worth
about a second of the rate, in one short UPDATE, and spends it locally
(processors/ai/ratelimit.py). Grants never overlap, because the row lock orders them, so the
fleet's requests stay within the limit however many daemons share it; a grant a daemon cannot
use is lost, which costs at most one grant's worth per idle daemon.

The row is keyed by a name, not a model: the same take-a-stretch-of-a-shared-timeline scheme
carries any amount per period (tokens per minute, a company's spend per day).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, func, literal, select, update

from domain.limits import Grant, Refused
from projections.schema import shared_limits
from projections.store import WRITE
from projections.upsert import dialect_insert


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


class SharedBuckets:
    """The fleet's buckets on one PostgreSQL database."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("limits are shared through PostgreSQL (SQLite runs one daemon)")
        self.engine = engine
        self._known: set[str] = set()
        self.round_trips = 0
        """Grants and penalties asked of the database (for the cost measurement)."""

    def take(
        self, key: str, amount: float, rate: float, tolerance: float, horizon: float
    ) -> Grant | Refused:
        """Appends ``amount`` units at ``rate`` per second to the bucket's timeline, unless
        its free time lies more than ``horizon`` seconds ahead. ``tolerance``: the burst
        allowance in seconds."""
        tat = shared_limits.c.tat
        now = func.now()
        stmt = (
            update(shared_limits)
            .where(
                shared_limits.c.key == key,
                tat - literal(_seconds(tolerance)) <= now + literal(_seconds(horizon)),
            )
            .values(
                tat=func.greatest(tat, now - literal(_seconds(tolerance)))
                + literal(_seconds(amount / rate))
            )
            .returning(func.extract("epoch", tat - now))
        )
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            self.round_trips += 1
            if key not in self._known:
                conn.execute(
                    dialect_insert(conn, shared_limits)
                    .values(key=key, tat=now)
                    .on_conflict_do_nothing()
                )
                self._known.add(key)
            ends = conn.execute(stmt).scalar()
            if ends is None:
                ahead = conn.execute(
                    select(func.extract("epoch", tat - now)).where(shared_limits.c.key == key)
                ).scalar_one()
                return Refused(max(0.0, float(ahead) - tolerance - horizon))
        end = float(ends)
        return Grant(end - amount / rate, end)

    def hold_off(self, key: str, seconds: float) -> None:
        """The provider said "too many requests": nobody in the fleet takes this bucket for
        ``seconds`` from now."""
        tat = shared_limits.c.tat
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            self.round_trips += 1
            conn.execute(
                update(shared_limits)
                .where(shared_limits.c.key == key)
                .values(tat=func.greatest(tat, func.now() + literal(_seconds(seconds))))
            )
