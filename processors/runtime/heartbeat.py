"""The heartbeat: live claims (queued or running) renew their leases in one batched write,
so a lease can be short and a dead daemon's work is taken over within about one lease."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from uuid import UUID

from domain.errors import DomainError
from domain.session import Session
from domain.stages import Stage, Status
from processors.clock import Clock
from processors.runtime.config import DaemonConfig
from processors.runtime.flight import InFlight
from processors.runtime.reporting import Reporter
from processors.runtime.writes import WriteQueue


class Heartbeat:
    def __init__(
        self,
        config: DaemonConfig,
        stages: Sequence[Stage],
        clock: Clock,
        writes: WriteQueue,
        find_session: Callable[[UUID], Session | None],
        give_up: Callable[[InFlight], None],
        reporter: Reporter,
    ) -> None:
        self.config = config
        self.interval = min((config.for_stage(s).heartbeat for s in stages), default=10.0)
        self.clock = clock
        self.writes = writes
        self.find_session = find_session
        self.give_up = give_up
        self.reporter = reporter
        self.next_at = 0.0
        """When the next beat is due, on the monotonic clock."""
        self._recheck: list[InFlight] = []
        """Flights whose renewal lost a race: is the claim still theirs?"""

    def beat(self, in_flight: dict[tuple[UUID, Stage], InFlight]) -> None:
        """Extends the leases of live claims that have used a third of them (one write,
        queued for the loop's flush)."""
        now_mono = time.monotonic()
        if now_mono < self.next_at or not in_flight:
            return
        self.next_at = now_mono + self.interval
        now = self.clock()
        extended: list[InFlight] = []
        for flight in in_flight.values():
            cfg = self.config.for_stage(flight.stage)
            if flight.abandoned or flight.lease_ends - now_mono > cfg.lease_seconds - cfg.heartbeat:
                continue
            try:
                flight.session.extend_lease(
                    flight.stage, flight.attempt, now + timedelta(seconds=cfg.lease_seconds), now
                )
            except DomainError:
                continue
            extended.append(flight)
        self._recheck_claims(in_flight)
        if extended:
            self.writes.add(
                [f.session for f in extended], functools.partial(self._stored, extended, now_mono)
            )

    def _stored(self, flights: list[InFlight], at: float, saved: set[UUID]) -> None:
        for flight in flights:
            if flight.session.id in saved:
                lease = self.config.for_stage(flight.stage).lease_seconds
                flight.lease_ends = max(flight.lease_ends, at + lease)
            else:
                self._recheck.append(flight)

    def _recheck_claims(self, in_flight: dict[tuple[UUID, Stage], InFlight]) -> None:
        """A renewal lost a race: if the attempt is still ours, go on with the latest state;
        if someone took it over (or reset it), give it up."""
        flights, self._recheck = self._recheck, []
        for flight in flights:
            if in_flight.get(flight.key) is not flight:
                continue
            fresh = self.find_session(flight.session.id)
            state = fresh.stages[flight.stage] if fresh is not None else None
            if (
                fresh is not None
                and state is not None
                and state.status is Status.IN_PROGRESS
                and state.attempt == flight.attempt
            ):
                flight.session = fresh
                continue
            self.give_up(flight)
            self.reporter.event(
                "claim_lost", flight.session, flight.stage, flight.attempt, "taken over"
            )
