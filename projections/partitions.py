"""Partition claims for a fleet of daemons on PostgreSQL: each live daemon holds about its
fair share of the partitions, renews them with its heartbeat, gives up what is above its
share once its work there is done, and takes over the partitions of a daemon that stopped
heartbeating (after the claim timeout). All of it in the database's rows and time, one short
transaction per heartbeat; a split-brain moment is still safe, because claiming a stage is an
optimistic append that only one daemon can win."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, Engine, func, or_, select, update

from domain.partitions import PARTITIONS
from projections.schema import daemon_workers, fleet_partitions
from projections.store import WRITE
from projections.upsert import dialect_insert


@dataclass(frozen=True)
class Rebalance:
    held: frozenset[int]
    working: frozenset[int]
    """Held and to be worked: the rest is above the fair share, waiting for its in-flight
    work to finish before it is given back (no new work is claimed there)."""
    taken: tuple[int, ...]
    released: tuple[int, ...]
    live: int
    share: int


def live_daemons(conn: Connection, timeout: float) -> int:
    cutoff = func.now() - timedelta(seconds=timeout)
    return int(
        conn.execute(
            select(func.count()).where(
                daemon_workers.c.stopped_at.is_(None), daemon_workers.c.heartbeat_at > cutoff
            )
        ).scalar_one()
    )


def unowned_partitions(conn: Connection, count: int = PARTITIONS) -> int:
    """Partitions no live daemon holds (never taken, given back, or their owner's claim
    expired)."""
    held = conn.execute(
        select(func.count()).where(
            fleet_partitions.c.owner.is_not(None),
            fleet_partitions.c.expires_at > func.now(),
            fleet_partitions.c.partition < count,
        )
    ).scalar_one()
    return count - int(held)


class PartitionKeeper:
    def __init__(
        self,
        engine: Engine,
        worker_id: str,
        claim_timeout: float = 5.0,
        count: int = PARTITIONS,
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("partitions are shared through PostgreSQL")
        self.engine = engine
        self.worker_id = worker_id
        self.claim_timeout = claim_timeout
        self.count = count
        self.held: frozenset[int] = frozenset()
        self._seeded = False

    def keep(self, busy: Mapping[int, int]) -> Rebalance:
        """One heartbeat: renew what is held, give back what is above the fair share and has
        no work in flight (``busy``: partition -> claims in flight), take free ones up to it."""
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            if not self._seeded:
                self._seed(conn)
            expires = func.now() + timedelta(seconds=self.claim_timeout)
            mine = conn.execute(
                update(fleet_partitions)
                .where(fleet_partitions.c.owner == self.worker_id)
                .values(expires_at=expires)
                .returning(fleet_partitions.c.partition)
            ).scalars()
            held = set(mine)
            live = max(1, live_daemons(conn, self.claim_timeout))
            share = math.ceil(self.count / live)
            released: list[int] = []
            leaving: set[int] = set()
            if len(held) > share:
                # The highest-numbered go: the fewest of them busy, so the most go at once.
                excess = len(held) - share
                order = sorted(held, key=lambda p: (bool(busy.get(p)), -p))
                leaving = set(order[:excess])
                released = [p for p in order[:excess] if not busy.get(p)]
                if released:
                    conn.execute(
                        update(fleet_partitions)
                        .where(
                            fleet_partitions.c.owner == self.worker_id,
                            fleet_partitions.c.partition.in_(released),
                        )
                        .values(owner=None, expires_at=None)
                    )
                    held -= set(released)
                    leaving -= set(released)
            taken: list[int] = []
            if len(held) < share:
                free = (
                    select(fleet_partitions.c.partition)
                    .where(
                        or_(
                            fleet_partitions.c.owner.is_(None),
                            fleet_partitions.c.expires_at <= func.now(),
                        )
                    )
                    .order_by(fleet_partitions.c.partition)
                    .limit(share - len(held))
                    .with_for_update(skip_locked=True)
                )
                taken = list(
                    conn.execute(
                        update(fleet_partitions)
                        .where(fleet_partitions.c.partition.in_(free.scalar_subquery()))
                        .values(owner=self.worker_id, expires_at=expires, taken_at=func.now())
                        .returning(fleet_partitions.c.partition)
                    ).scalars()
                )
                held |= set(taken)
        self.held = frozenset(held)
        working = frozenset(held - leaving)
        return Rebalance(self.held, working, tuple(sorted(taken)), tuple(released), live, share)

    def leave(self) -> None:
        """Gives every partition back at once, so the others need not wait for the timeout."""
        with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            conn.execute(
                update(fleet_partitions)
                .where(fleet_partitions.c.owner == self.worker_id)
                .values(owner=None, expires_at=None)
            )
        self.held = frozenset()

    def _seed(self, conn: Connection) -> None:
        conn.execute(
            dialect_insert(conn, fleet_partitions)
            .values([{"partition": p} for p in range(self.count)])
            .on_conflict_do_nothing(index_elements=["partition"])
        )
        self._seeded = True
