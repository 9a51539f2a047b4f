"""How long a server asks us to wait, and which HTTP statuses are worth another try.

One parser for the transcript fetcher, the CSV source and the OpenAI client, so a header one of
them honours is honoured by all. No I/O: the clock is passed in and read only for an HTTP date.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime

from processors.clock import Clock, utc_now

RETRYABLE_STATUS: frozenset[int] = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Timeout, too early, too many requests and the transient server errors."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}

Headers = Mapping[str, str] | Message


def _seconds(text: str) -> float | None:
    """A finite number, negatives as 0; None for anything else (``inf`` and ``nan`` too: a
    server must not be able to park work forever)."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return max(0.0, value)


def parse_duration(text: str | None) -> float | None:
    """Seconds in a rate-limit reset header: ``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``, ``2``."""
    if not text:
        return None
    value = text.strip()
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    total = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    return total if math.isfinite(total) else None


def parse_http_date(text: str, now: datetime) -> float | None:
    """Seconds from ``now`` until an HTTP date (0 if it has passed); a date without a zone is
    taken as GMT, as HTTP dates always are."""
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def retry_after_seconds(headers: Headers, now: datetime | Clock = utc_now) -> float | None:
    """How long the server asks us to wait: ``retry-after-ms``, ``Retry-After`` (seconds, a
    duration such as ``1m30s``, or an HTTP date), else the reset time of the exhausted
    ``x-ratelimit-*`` limit (the longest reset if none says it is exhausted). ``now`` is the
    current time or the clock to read it from, read only for an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        seconds = _seconds(ms.strip())
        if seconds is not None:
            return seconds / 1000
    value = headers.get("retry-after")
    if value:
        seconds = parse_duration(value)
        if seconds is not None:
            return seconds
        when = parse_http_date(value, now if isinstance(now, datetime) else now())
        if when is not None:
            return when
    resets: list[float] = []
    exhausted: list[float] = []
    for kind in ("requests", "tokens"):
        reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
        if reset is None:
            continue
        resets.append(reset)
        if (headers.get(f"x-ratelimit-remaining-{kind}") or "").strip() == "0":
            exhausted.append(reset)
    if exhausted:
        return max(exhausted)
    return max(resets) if resets else None
