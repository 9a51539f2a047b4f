"""What a use case works on, passed in by the caller (the CLI's runtime, or a test)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from processors.clock import Clock, utc_now
from projections.runner import ProjectionRunner
from store.application import LiveDashApp


@dataclass(frozen=True)
class Backend:
    app: LiveDashApp
    """The event-sourced application: aggregates are read and saved here."""
    engine: Engine
    """The projection tables, for lookups and reports."""
    runner: ProjectionRunner
    """Brings the projections up to date, so a use case reads what was just written."""
    clock: Clock = field(default=utc_now)

    def catch_up(self) -> None:
        self.runner.catch_up()
