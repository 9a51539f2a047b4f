"""What a shared limit answers when a daemon asks it for room: a stretch of its timeline, or
how long until it has some. Times are seconds from the answering side's now."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Grant:
    """The holder may spend the asked amount between ``start`` and ``end``, evenly, at the
    limit's rate."""

    start: float
    end: float


@dataclass(frozen=True)
class Refused:
    """Taken further ahead than the asker would wait: room again in ``retry_after`` s."""

    retry_after: float
