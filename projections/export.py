"""A company's whole log for an auditor, each event bound to the hash chain at its position.

Every exported event carries the stored row exactly as linked (topic and state bytes, in
base64) with the chain's link before it and its own link, so anyone can recompute
``link(previous, row) == hash`` with SHA-256 alone (docs/audit.md shows how); the readable
``data`` beside it is the decoded event (not itself hashed: the stored state is what counts).
The export recomputes every link of the log as it reads and refuses a log that differs.
It stops at the chain's head: events stored after it are not yet linked and follow in the
next export.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Iterator
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent
from pydantic import BaseModel

from projections.chain import GENESIS, LogReader, StoredRow, head, link, links_after


class ChainBroken(Exception):
    """The log and its chain part ways: an export would bind events to the wrong links."""


def company_log(
    reader: LogReader,
    mapper: Mapper[Any],
    originators: Collection[UUID],
    since: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """The events of ``originators`` (a company and its sessions) in log order, up to the
    chain's head, from ``since`` (an event time) when given."""
    with reader.engine.connect() as conn:
        top = head(conn).position
        links = links_after(conn, 0, top)
        previous = GENESIS
        for row in reader.rows(conn, 0, top):
            position, digest = next(links, (None, None))
            # Recomputed as it goes (cheap beside decoding): an export of a tampered log
            # stops at the first event that no longer matches its link.
            if position != row.position or digest is None or link(previous, row) != digest:
                raise ChainBroken(f"the log and its hash chain part at position {row.position}")
            if row.originator_id in originators:
                event: Any = mapper.to_domain_event(
                    StoredEvent(row.originator_id, row.version, row.topic, row.state)
                )
                if since is None or event.timestamp >= since:
                    yield _line(row, previous, digest, event)
            previous = digest


def _line(row: StoredRow, previous: bytes, digest: bytes, event: Any) -> dict[str, Any]:
    data = {k: plain(v) for k, v in vars(event).items() if k not in _ENVELOPE}
    return {
        "position": row.position,
        "time": event.timestamp.isoformat(),
        "type": type(event).__qualname__,
        "originator_id": str(row.originator_id),
        "version": row.version,
        "data": data,
        "chain": {
            "previous": previous.hex(),
            "hash": digest.hex(),
            "topic": row.topic,
            "state_base64": base64.b64encode(row.state).decode("ascii"),
        },
    }


_ENVELOPE = {"originator_id", "originator_version", "timestamp"}


def plain(value: Any) -> Any:
    """JSON-ready: models and enums by value, times in ISO 8601, money as exact text."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value
