"""What a caller asks of a legacy migration, and the error for a request it cannot carry out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class LegacyMigrationError(Exception):
    """A request the migration cannot carry out (an unknown company, a bad option)."""


@dataclass
class MigrationOptions:
    company: str | None = None
    dry_run: bool = False
    batch_size: int = 1000
    timezone: str = "UTC"
    on_total: Callable[[int], None] | None = None
    on_progress: Callable[[int], None] | None = None
    after_batch: Callable[[int], None] | None = None
    """Called with the batch number after each batch is stored (tests interrupt a run here)."""
    catch_up: bool = True
    """Bring the projections up to date at the end, so the reports are ready at once."""
    database_url: str | None = None
    """The target's URL, for worker processes (each opens its own event store)."""
    workers: int | None = None
    """Worker processes; None: two for a large migration into PostgreSQL, else one."""
