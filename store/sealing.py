"""Sealing personal values at the persistence boundary, so the domain stays pure.

For the event topics of domain/personal.py, the personal values are taken out of the event's
state, encrypted with the session's data key (AES-GCM; the associated data binds them to the
event's originator, version and topic, so a ciphertext cannot be moved to another event) and
stored beside the redacted values as ``{"_sealed_": {"v": 1, "c": "<base64 nonce+ct>"}}``.
Decoding opens them again; when the key is gone (erased) the event keeps its redacted values.
``"c": null`` is personal data that arrived for an already erased session: never stored.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic

from domain.personal import PERSONAL, join, split
from store.data_keys import NONCE_BYTES, DataKeys

SEALED = "_sealed_"
_MARK = b'"' + SEALED.encode() + b'"'


def _aad(originator_id: UUID, version: int, topic: str) -> bytes:
    return originator_id.bytes + version.to_bytes(8, "big") + topic.encode()


class SealingMapper(Mapper[UUID]):
    def __init__(self, transcoder: Transcoder, keys: DataKeys) -> None:
        super().__init__(transcoder)
        self.keys = keys
        self._local = threading.local()

    # ------------------------------------------------------------------ writing
    @contextmanager
    def writing(self, events: Sequence[Any]) -> Iterator[None]:
        """The keys for a batch about to be stored, fetched or created with one query."""
        ids = [e.originator_id for e in events if get_topic(type(e)) in PERSONAL]
        self._local.write = self.keys.for_writing(ids, datetime.now(UTC)) if ids else {}
        try:
            yield
        finally:
            self._local.write = None

    def _write_key(self, sid: UUID) -> AESGCM | None:
        keys: dict[UUID, AESGCM | None] | None = getattr(self._local, "write", None)
        if keys is not None and sid in keys:
            return keys[sid]
        return self.keys.for_writing([sid], datetime.now(UTC))[sid]

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        topic = get_topic(type(domain_event))
        if topic not in PERSONAL:
            return super().to_stored_event(domain_event)
        state = dict(vars(domain_event))
        sid: UUID = state.pop("originator_id")
        version: int = state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        taken = split(topic, state)
        key = self._write_key(sid)
        sealed: str | None = None
        if key is not None:
            nonce = os.urandom(NONCE_BYTES)
            plain = self.transcoder.encode(taken or {})
            sealed = base64.b64encode(
                nonce + key.encrypt(nonce, plain, _aad(sid, version, topic))
            ).decode("ascii")
        state[SEALED] = {"v": 1, "c": sealed}
        return StoredEvent(sid, version, topic, self.transcoder.encode(state))

    # ------------------------------------------------------------------ reading
    @contextmanager
    def reading(self, ids: Iterable[UUID] = ()) -> Iterator[None]:
        """Keys read once for everything decoded inside (one query for ``ids``, then one per
        other session met). Outside, each sealed event reads its key: never a stale one."""
        outer = getattr(self._local, "read", None)
        wanted = [i for i in dict.fromkeys(ids) if outer is None or i not in outer]
        found = self.keys.read(wanted) if wanted else {}
        if outer is not None:
            outer.update(found)
            yield
            return
        self._local.read = found
        try:
            yield
        finally:
            self._local.read = None

    def decode_all(self, stored: Sequence[StoredEvent]) -> list[DomainEventProtocol[UUID]]:
        ids = [_uuid(s) for s in stored if s.topic in PERSONAL and _MARK in s.state]
        with self.reading(ids):
            return [self.to_domain_event(s) for s in stored]

    def _read_key(self, sid: UUID) -> AESGCM | None:
        keys: dict[UUID, AESGCM | None] | None = getattr(self._local, "read", None)
        if keys is None:
            return self.keys.read([sid])[sid]
        if sid not in keys:
            keys.update(self.keys.read([sid]))
        return keys[sid]

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        event = super().to_domain_event(stored_event)
        state = vars(event)
        envelope = state.pop(SEALED, None)
        if envelope is None or envelope.get("c") is None:
            return event
        sid = _uuid(stored_event)
        key = self._read_key(sid)
        if key is None:
            return event  # erased: the redacted values stay
        blob = base64.b64decode(envelope["c"])
        aad = _aad(sid, stored_event.originator_version, stored_event.topic)
        try:
            plain = key.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            return event  # sealed with a key erased since (a writer that held it in cache)
        join(state, self.transcoder.decode(plain))
        return event


def _uuid(stored: StoredEvent) -> UUID:
    sid = stored.originator_id
    return sid if isinstance(sid, UUID) else UUID(sid)


def has_plain_personal_data(stored: StoredEvent) -> bool:
    """An event with personal values stored before encryption was turned on: deleting a key
    cannot make it unreadable."""
    return stored.topic in PERSONAL and _MARK not in stored.state


def decode_all(mapper: Mapper[Any], stored: Sequence[StoredEvent]) -> list[Any]:
    """Many stored events, their keys read with one query when the mapper seals."""
    if isinstance(mapper, SealingMapper):
        return list(mapper.decode_all(stored))
    return [mapper.to_domain_event(s) for s in stored]
