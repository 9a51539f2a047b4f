"""A hash chain over the event log, so that changing history shows.

Each stored event's link is SHA-256 over the previous link and the event as stored: its
position, aggregate id, version, topic and bytes. The links live in `audit_chain`, one row per
position, appended in log order by `extend` (the daemon calls it every few seconds, and
`livedash audit head` before it answers). `verify` recomputes the links from the log and
reports the first position where the log and the chain part ways: a row altered, a row
removed, or a row inserted below the chain's head. The head (position and hash) is the digest
an auditor keeps outside the database: `verify --expect POS:HASH` then also catches a chain
rewritten together with the log.

The chain follows the log: an event is protected from the moment a link covers it, within one
daemon tick; the triggers of store/append_only.py guard it before that.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, insert, select, text

from projections.schema import audit_chain
from projections.store import WRITE

GENESIS = bytes(32)
PAGE = 2000


@dataclass(frozen=True)
class StoredRow:
    position: int
    originator_id: UUID
    version: int
    topic: str
    state: bytes


def link(previous: bytes, row: StoredRow) -> bytes:
    """The chain's next hash: every field length-prefixed, so no two events read alike."""
    topic = row.topic.encode("utf-8")
    digest = hashlib.sha256(previous)
    digest.update(row.position.to_bytes(8, "big"))
    digest.update(row.originator_id.bytes)
    digest.update(row.version.to_bytes(8, "big", signed=True))
    digest.update(len(topic).to_bytes(4, "big"))
    digest.update(topic)
    digest.update(len(row.state).to_bytes(8, "big"))
    digest.update(row.state)
    return digest.digest()


class LogReader:
    """The raw stored events, in log order, a page at a time."""

    def __init__(self, engine: Engine, table: str, schema: str | None = None) -> None:
        self.engine = engine
        if engine.dialect.name == "postgresql":
            name = f'"{schema}"."{table}"' if schema else f'"{table}"'
            position = "notification_id"
        else:
            name, position = f'"{table}"', "rowid"
        self._page = text(
            f"SELECT {position} AS position, originator_id, originator_version, topic, state "
            f"FROM {name} WHERE {position} > :after ORDER BY {position} LIMIT :n"
        )

    def rows(self, conn: Connection, after: int, until: int | None = None) -> Iterator[StoredRow]:
        while True:
            page = conn.execute(self._page, {"after": after, "n": PAGE}).all()
            for r in page:
                row = _row(r)
                if until is not None and row.position > until:
                    return
                yield row
            if len(page) < PAGE:
                return
            after = int(page[-1][0])


def _row(r: Any) -> StoredRow:
    oid = r[1] if isinstance(r[1], UUID) else UUID(str(r[1]))
    # A state rewritten as TEXT behind our back (SQLite allows it) still hashes, to a
    # different link: it is reported as altered, not a crash.
    state = r[4].encode("utf-8") if isinstance(r[4], str) else bytes(r[4])
    return StoredRow(int(r[0]), oid, int(r[2]), str(r[3]), state)


@dataclass(frozen=True)
class Head:
    position: int
    hash: str

    def __str__(self) -> str:
        return f"{self.position}:{self.hash}"


def head(conn: Connection) -> Head:
    row = conn.execute(
        select(audit_chain.c.position, audit_chain.c.hash)
        .order_by(audit_chain.c.position.desc())
        .limit(1)
    ).first()
    if row is None:
        return Head(0, GENESIS.hex())
    return Head(int(row[0]), bytes(row[1]).hex())


def extend(reader: LogReader) -> Head:
    """Links every event stored since the chain's head and returns the new head."""
    top = extend_some(reader, max_pages=None, wait=True)
    assert top is not None  # a waiting writer always gets its turn
    return top


def extend_some(reader: LogReader, max_pages: int | None, wait: bool) -> Head | None:
    """Links the events stored since the chain's head, a page per transaction; one writer at
    a time (an advisory lock on PostgreSQL, the write lock on SQLite).

    ``max_pages`` bounds the work of one call (a daemon's tick must stay short); without
    ``wait`` a call that finds another writer at work returns None at once.
    """
    pages = 0
    while True:
        with reader.engine.connect().execution_options(**WRITE) as conn, conn.begin():
            if not _lock(conn, wait):
                return None
            last = head(conn)
            previous = bytes.fromhex(last.hash)
            links: list[dict[str, Any]] = []
            for row in reader.rows(conn, last.position):
                previous = link(previous, row)
                links.append({"position": row.position, "hash": previous})
                if len(links) >= PAGE:
                    break
            if links:
                _store(conn, links)
        pages += 1
        top = Head(links[-1]["position"], previous.hex()) if links else last
        if len(links) < PAGE or (max_pages is not None and pages >= max_pages):
            return top


def _store(conn: Connection, links: list[dict[str, Any]]) -> None:
    """COPY on PostgreSQL: a page of links in one stream, not statements of rows."""
    if conn.dialect.name != "postgresql":
        conn.execute(insert(audit_chain), links)
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor().copy("COPY audit_chain (position, hash) FROM STDIN") as copy:
        for item in links:
            copy.write_row((item["position"], item["hash"]))


def _lock(conn: Connection, wait: bool) -> bool:
    if conn.dialect.name != "postgresql":
        return True  # the WRITE transaction holds SQLite's one write lock
    if wait:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('livedash_audit_chain'))"))
        return True
    taken = conn.execute(text("SELECT pg_try_advisory_xact_lock(hashtext('livedash_audit_chain'))"))
    return bool(taken.scalar())


@dataclass(frozen=True)
class Finding:
    position: int
    kind: str
    """altered, removed, inserted, or expected (the kept digest does not match)."""
    detail: str


@dataclass(frozen=True)
class Verdict:
    checked: int
    head: Head
    finding: Finding | None

    @property
    def intact(self) -> bool:
        return self.finding is None


def verify(reader: LogReader, start: int = 0, expect: Head | None = None) -> Verdict:
    """Recomputes the chain from the log after position ``start`` (trusting the link there)
    up to the chain's head; the first difference is the finding."""
    with reader.engine.connect() as conn:
        top = head(conn)
        previous = GENESIS
        if start > 0:
            stored = conn.execute(
                select(audit_chain.c.hash).where(audit_chain.c.position == start)
            ).scalar()
            if stored is None:
                return Verdict(0, top, Finding(start, "removed", "no link at the start position"))
            previous = bytes(stored)
        links = links_after(conn, start, top.position)
        checked = 0
        for row in reader.rows(conn, start, top.position):
            position, stored_hash = next(links, (None, None))
            if position is not None and position < row.position:
                return Verdict(checked, top, Finding(position, "removed", "linked, not in the log"))
            if position is None or position > row.position:
                detail = "in the log below the chain's head, never linked"
                return Verdict(checked, top, Finding(row.position, "inserted", detail))
            previous = link(previous, row)
            if previous != stored_hash:
                detail = "the stored event differs from the one that was linked"
                return Verdict(checked, top, Finding(row.position, "altered", detail))
            checked += 1
            if expect is not None and row.position == expect.position:
                if previous.hex() != expect.hash:
                    detail = f"the kept digest {expect.hash[:16]}… differs: log and chain rewritten"
                    return Verdict(checked, top, Finding(row.position, "expected", detail))
                expect = None
        position, _ = next(links, (None, None))
        if position is not None:
            return Verdict(checked, top, Finding(position, "removed", "linked, not in the log"))
        if expect is not None and expect.position <= top.position:
            detail = "the kept digest's position is not in the log"
            return Verdict(checked, top, Finding(expect.position, "expected", detail))
        return Verdict(checked, top, None)


def links_after(conn: Connection, after: int, until: int) -> Iterator[tuple[int, bytes]]:
    while after < until:
        page = conn.execute(
            select(audit_chain.c.position, audit_chain.c.hash)
            .where(audit_chain.c.position > after, audit_chain.c.position <= until)
            .order_by(audit_chain.c.position)
            .limit(PAGE)
        ).all()
        if not page:
            return
        for position, digest in page:
            yield int(position), bytes(digest)
        after = int(page[-1][0])


class ChainKeeper:
    """A daemon's scheduled job: links the new events every ``interval`` seconds, a few pages
    per tick so the loop never waits long; in a fleet, the daemon that finds another one
    linking leaves it to that one."""

    def __init__(self, reader: LogReader, interval: float = 5.0, pages_per_tick: int = 5) -> None:
        self.reader = reader
        self.interval = interval
        self.pages_per_tick = pages_per_tick
        self._next = 0.0

    def __call__(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        before = self._head_position()
        top = extend_some(self.reader, self.pages_per_tick, wait=False)
        behind = top is not None and top.position - before >= self.pages_per_tick * PAGE
        # Still behind (a log that predates the chain): go on next tick, else rest.
        self._next = now if behind else now + self.interval

    def _head_position(self) -> int:
        with self.reader.engine.connect() as conn:
            return head(conn).position
