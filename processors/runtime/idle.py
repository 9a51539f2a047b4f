"""When `run --until-idle` may stop: nothing in hand, nothing due (paused work left out: it
waits for an operator), nothing running elsewhere, no retry within the idle horizon."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from processors.runtime.pauses import standing_unpaused

if TYPE_CHECKING:
    from processors.runtime.daemon import Daemon


def daemon_idle(d: Daemon) -> bool:
    """Brings the projection up to date first; says so in the summary when idle."""
    if d.in_flight or d.candidates or d.paid:
        return False
    if d._paid_calls_pending():
        return False  # a given-up model call may still bring a paid answer to store
    if d.writes or d._lost:
        return False
    if d.feed.unprojected:  # the projection has yet to see our last events
        d.feed.advance(now=True)
        d.follow_log()
        if d.candidates:
            d.wake.set()  # work for the next turn, not a reason to sleep first
            return False
    if d.feed.news_waiting:
        return False
    if any(getattr(job, "busy", False) for job in d.scheduled):
        return False
    now = d.clock()
    standing = standing_unpaused(d.gate, d.work, now, d._active_companies())
    if standing.due:
        d._last_level = 0.0
        return False
    if standing.running_elsewhere:
        return False
    wake_at = standing.wake_at
    if wake_at is not None and wake_at <= now + timedelta(seconds=d.config.idle_horizon):
        return False
    d.summary.next_retry_at = wake_at
    d.summary.stopped_by = "idle"
    return True
