"""A daemon's membership of the fleet: its row in the register (`livedash workers`) and, on
PostgreSQL, the partitions it holds. The loop calls `beat` every turn; it does its work only
once per fleet heartbeat, and says which partitions the daemon works when that changed."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from uuid import UUID

from domain.partitions import partition_of
from processors.runtime.outage import is_database_unavailable
from projections.partitions import PartitionKeeper, Rebalance
from projections.workers import Presence


class FleetMember:
    def __init__(
        self,
        presence: Presence | None,
        keeper: PartitionKeeper | None,
        interval: float,
    ) -> None:
        self.presence = presence
        self.keeper = keeper
        self.interval = interval
        self.working: frozenset[int] | None = None if keeper is None else frozenset()
        """The partitions this daemon claims work in; None: every session (no fleet)."""
        self._next_beat = 0.0

    @property
    def partitioned(self) -> bool:
        return self.working is not None

    def mine(self, session_id: UUID) -> bool:
        return self.working is None or partition_of(session_id) in self.working

    def join(self) -> None:
        if self.presence is not None:
            self.presence.join()

    def beat(
        self, in_flight: Iterable[UUID], in_flight_per_stage: Mapping[str, int], completed: int
    ) -> Rebalance | None:
        """The register's heartbeat and the partitions' rebalance, at most once per interval.
        Returns the rebalance when the partitions worked changed."""
        if self.presence is None and self.keeper is None:
            return None
        now = time.monotonic()
        if now < self._next_beat:
            return None
        self._next_beat = now + self.interval
        if self.presence is not None:
            held = len(self.keeper.held) if self.keeper is not None else 0
            self.presence.beat(dict(in_flight_per_stage), completed, held)
        if self.keeper is None:
            return None
        change = self.keeper.keep(Counter(partition_of(sid) for sid in in_flight))
        moved = change.working != self.working or bool(change.taken or change.released)
        self.working = change.working
        return change if moved else None

    def leave(self, stopped_by: str) -> None:
        """Gives the partitions back and marks the row stopped; when the database is away, the
        claims and the row age out as a dead daemon's would."""
        try:
            if self.keeper is not None:
                self.keeper.leave()
            if self.presence is not None:
                self.presence.leave(stopped_by)
        except Exception as e:
            if not is_database_unavailable(e):
                raise
