"""Per-session data keys: created on a session's first personal event, wrapped by the master
key, kept in their own table, never in an event. Deleting a session's key is its erasure:
every copy of its sealed events, in the log, in exports and in backups of the log, becomes
unreadable, while the log itself is never changed (it refuses UPDATE and DELETE).

An erased session keeps a row with no key (a tombstone), so that personal data arriving
for it later (a fetch that was in flight) is not sealed with a fresh key: it is not stored.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.expression import Executable

from store.master_key import KEY_BYTES, MasterKeyError

NONCE_BYTES = 12
_CHECK_LABEL = b"livedash master key check v1"

key_metadata = MetaData()

session_data_keys = Table(
    "session_data_keys",
    key_metadata,
    Column("session_id", String(36), primary_key=True),
    Column("wrapped_key", LargeBinary),
    Column("created_at", String(40), nullable=False),
    Column("erased_at", String(40)),
)
"""One row per session that ever had personal data sealed: ``wrapped_key`` is the data key
encrypted under the master key (AES-GCM, the session id as associated data); NULL once
erased."""

data_key_master = Table(
    "data_key_master",
    key_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("key_check", LargeBinary, nullable=False),
    Column("created_at", String(40), nullable=False),
)
"""One row once encryption is on for this database: an HMAC of a constant under the master
key, so a process with another key (or none) is refused instead of writing data that the
others cannot read."""

KEY_TABLES = (session_data_keys.name, data_key_master.name)


def create_key_tables(engine: Engine) -> None:
    key_metadata.create_all(engine, checkfirst=True)


def _now_text(now: datetime) -> str:
    return now.isoformat()


def _durable(conn: Connection) -> None:
    """The projection engine commits without waiting for the WAL flush; a key must be on
    disk before the event sealed with it, and an erasure must not roll back in a crash."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit = on")


class DataKeys:
    """The keys table, with a small cache for writing (reads always ask the table, so a key
    erased by another process is never used to decrypt after the erasure)."""

    def __init__(self, engine: Engine, master_key: bytes, cache_size: int = 4096) -> None:
        self.engine = engine
        self.master_key = master_key
        """Kept for worker processes of the same run (the legacy migration), nothing else."""
        self._master = AESGCM(master_key)
        self._check = hmac.new(master_key, _CHECK_LABEL, hashlib.sha256).digest()
        self._cache: OrderedDict[UUID, AESGCM] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction; on SQLite it takes the write lock up front (see
        projections/store.py: a deferred one that reads first fails when another writes)."""
        with (
            self.engine.connect().execution_options(livedash_write=True) as conn,
            conn.begin(),
        ):
            yield conn

    # ---------------------------------------------------------------- master key
    def check_master(self, now: datetime) -> None:
        """Turns encryption on for a database that has no check yet; refuses a wrong key."""
        with self.engine.connect() as conn:
            found = conn.execute(select(data_key_master.c.key_check)).scalar()
        if found is None:  # two processes may turn it on at once: the first one's stays
            with self._writing() as conn:
                _durable(conn)
                conn.execute(
                    _insert_missing(conn, data_key_master),
                    {"id": 1, "key_check": self._check, "created_at": _now_text(now)},
                )
                found = conn.execute(select(data_key_master.c.key_check)).scalar()
        if found is None or not hmac.compare_digest(bytes(found), self._check):
            raise MasterKeyError(
                "the master key is not the one this database's personal data is sealed with"
            )

    @staticmethod
    def encryption_on(engine: Engine) -> bool:
        with engine.connect() as conn:
            return conn.execute(select(data_key_master.c.id)).first() is not None

    # --------------------------------------------------------------------- keys
    def _wrap(self, session_id: UUID, key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._master.encrypt(nonce, key, session_id.bytes)

    def _unwrap(self, session_id: UUID, wrapped: bytes) -> AESGCM:
        wrapped = bytes(wrapped)
        key = self._master.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], session_id.bytes)
        return AESGCM(key)

    def _select(self, conn: Connection, ids: Sequence[UUID]) -> dict[UUID, bytes | None]:
        found: dict[UUID, bytes | None] = {}
        for i in range(0, len(ids), 500):
            chunk = [str(sid) for sid in ids[i : i + 500]]
            query = select(session_data_keys.c.session_id, session_data_keys.c.wrapped_key).where(
                session_data_keys.c.session_id.in_(chunk)
            )
            for sid, wrapped in conn.execute(query).all():
                found[UUID(sid)] = wrapped
        return found

    def read(self, ids: Iterable[UUID]) -> dict[UUID, AESGCM | None]:
        """The keys of ``ids``: None for an erased session or one that never had a key."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        with self.engine.connect() as conn:
            found = self._select(conn, wanted)
        return {
            sid: (self._unwrap(sid, w) if (w := found.get(sid)) is not None else None)
            for sid in wanted
        }

    def for_writing(self, ids: Iterable[UUID], now: datetime) -> dict[UUID, AESGCM | None]:
        """Keys to seal new events with, created (durably, before the events) where missing;
        None for an erased session: its new personal data is not stored."""
        wanted = list(dict.fromkeys(ids))
        keys: dict[UUID, AESGCM | None] = {}
        with self._lock:
            for sid in wanted:
                cached = self._cache.get(sid)
                if cached is not None:
                    self._cache.move_to_end(sid)
                    keys[sid] = cached
        missing = [sid for sid in wanted if sid not in keys]
        if not missing:
            return keys
        with self.engine.connect() as conn:
            found = self._select(conn, missing)
        new = [sid for sid in missing if sid not in found]
        if new:
            with self._writing() as conn:
                _durable(conn)
                rows = [
                    {
                        "session_id": str(sid),
                        "wrapped_key": self._wrap(sid, AESGCM.generate_key(KEY_BYTES * 8)),
                        "created_at": _now_text(now),
                    }
                    for sid in new
                ]
                conn.execute(_insert_missing(conn), rows)
                found.update(self._select(conn, new))  # another writer's key, if it won
        with self._lock:
            for sid in missing:
                wrapped = found.get(sid)
                if wrapped is None:
                    keys[sid] = None
                    continue
                key = keys[sid] = self._unwrap(sid, wrapped)
                self._cache[sid] = key
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return keys

    def erase(self, ids: Iterable[UUID], now: datetime) -> None:
        """Deletes the keys (and leaves tombstones); SQLite overwrites the deleted bytes."""
        given = list(dict.fromkeys(ids))
        wanted = [str(sid) for sid in given]
        if not wanted:
            return
        with self._writing() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA secure_delete = ON")
            _durable(conn)
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                conn.execute(
                    delete(session_data_keys).where(session_data_keys.c.session_id.in_(chunk))
                )
                conn.execute(
                    insert(session_data_keys),
                    [
                        {"session_id": sid, "wrapped_key": None, "created_at": _now_text(now),
                         "erased_at": _now_text(now)}
                        for sid in chunk
                    ],
                )  # fmt: skip
        with self._lock:
            for sid in given:
                self._cache.pop(sid, None)
        if self.engine.dialect.name == "sqlite":
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Best effort: moves the pages into the database file (where `secure_delete` zeroed
        the key) and empties the WAL, which still holds them. A reader at that moment (a
        daemon) keeps them there until a later checkpoint; the erasure does not wait long."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA busy_timeout = 1000")
            try:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()
            finally:
                conn.exec_driver_sql("PRAGMA busy_timeout = 30000")


def _insert_missing(conn: Connection, table: Table = session_data_keys) -> Executable:
    """INSERT that leaves an existing row (same key) as it is."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()
