"""How the Batch API mode runs (`processors.runtime.batches`); cheap to import: the CLI builds
it before it knows whether the `openai` package is needed."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.budget import AIBudget
from processors.runtime.retry import RetryPolicy


@dataclass(frozen=True)
class BatchSettings:
    size: int = 1000
    """Requests per batch at most (OpenAI allows 50,000)."""
    poll_interval: float = 60.0
    gather: float = 60.0
    """Seconds due work may wait for more to make a fuller batch (a full one goes at once)."""
    max_open: int = 4
    """Batches in flight at once (per driver)."""
    window: str = "24h"
    lease_seconds: float = 25 * 3600
    """A batch claim's lease: the batch window and an hour to collect it."""
    send_lease: float = 600.0
    """Seconds one sender holds a batch's send lease: longer than an upload and a create may
    take (client timeouts and retries included), so nobody else creates the batch while its
    holder may still be creating it; a crashed sender's batch is taken up after it."""
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    installation_budget: AIBudget | None = None
