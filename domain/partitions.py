"""Work is split into a fixed number of partitions by a stable hash of the session id, so a
fleet of daemons can share it: each works the partitions it holds."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

PARTITIONS = 64
"""Fixed for the life of a database: a session's partition never changes."""


def partition_of(session_id: UUID, count: int = PARTITIONS) -> int:
    """The low bits of the id: session ids are name-based UUIDs (SHA-1), uniform there."""
    return session_id.int % count


def last_bytes(partitions: Iterable[int], count: int = PARTITIONS) -> list[str]:
    """The ids' possible last bytes (two hex digits) in these partitions: what a database
    can match on the id's text without knowing the hash."""
    if 256 % count:
        raise ValueError("the partition count must divide 256")
    held = set(partitions)
    return [f"{b:02x}" for b in range(256) if b % count in held]
