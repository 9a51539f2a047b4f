"""What a daemon run did: returned by the daemon, printed by the reporters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from domain.stages import Stage


@dataclass
class DaemonSummary:
    completed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    released: dict[str, int] = field(default_factory=dict)
    lost_races: int = 0
    retries_later: int = 0
    next_retry_at: datetime | None = None
    stopped_by: str = "idle"
    outages: int = 0
    unsaved_at_exit: int = 0
    """Outcomes and paid answers still unstored when the daemon gave up waiting at exit."""


def count(counter: dict[str, int], stage: Stage) -> None:
    counter[stage.value] = counter.get(stage.value, 0) + 1
