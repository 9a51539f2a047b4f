"""Erasing sessions' personal data (crypto-shredding): the data keys are deleted, then
`PersonalDataErased` records who, when, why and which fields.

The key goes first: a crash between the two leaves a session whose data is already
unreadable and whose erasure is not yet recorded, and running the erasure again records it.
The other order could record an erasure that did not happen.

A session stored before encryption was turned on holds its personal values in plain text
in the log, which refuses changes: deleting a key cannot make them unreadable, so such a
session is refused by name, never reported as erased.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import select

from domain.personal import field_names
from domain.session import Session
from processors.service.backend import Backend
from processors.service.errors import ExitCode, ServiceError
from processors.service.lookup import find_session, require_company
from projections.schema import erased_sessions, sessions
from store.sealing import has_plain_personal_data

BATCH = 500


class ErasedSession(BaseModel):
    session_id: UUID
    external_id: str


class Refused(BaseModel):
    session_id: UUID
    external_id: str
    reason: str


class ErasureResult(BaseModel):
    actor: str
    reason: str
    erased_at: datetime
    fields: list[str]
    erased: list[ErasedSession] = []
    already_erased: list[ErasedSession] = []
    refused: list[Refused] = []


def resolve_sessions(backend: Backend, keys: Sequence[str], company: str | None) -> list[UUID]:
    backend.catch_up()
    return [find_session(backend.engine, key, company).session_id for key in keys]


def sessions_started_before(
    backend: Backend, company: str, before: datetime, limit: int | None = None
) -> list[UUID]:
    """The company's sessions that started before ``before`` and are not erased yet."""
    backend.catch_up()
    info = require_company(backend.engine, company)
    return started_before(backend, info.company_id, before, limit)


def started_before(
    backend: Backend, company_id: UUID, before: datetime, limit: int | None = None
) -> list[UUID]:
    s = sessions
    query = (
        select(s.c.session_id)
        .where(
            s.c.company_id == company_id,
            s.c.start_time < before,
            s.c.session_id.not_in(select(erased_sessions.c.session_id)),
        )
        .order_by(s.c.start_time, s.c.session_id)
        .limit(limit)
    )
    with backend.engine.connect() as conn:
        return list(conn.execute(query).scalars())


def erase_sessions(
    backend: Backend,
    ids: Sequence[UUID],
    actor: str,
    reason: str,
    catch_up: bool = True,
    now: datetime | None = None,
) -> ErasureResult:
    """``catch_up``: bring the projections up to date after (a daemon's own feed does it)."""
    keys = backend.app.data_keys
    if keys is None:
        raise ServiceError(
            "personal data is stored unsealed in this database (no master key): "
            "deleting a key cannot erase it",
            hint="set LIVEDASH_MASTER_KEY before data is stored; see docs/erasure.md",
            code=ExitCode.USAGE,
        )
    if not reason.strip():
        raise ServiceError("an erasure needs a --reason", code=ExitCode.USAGE)
    now = now or backend.clock()
    result = ErasureResult(actor=actor, reason=reason, erased_at=now, fields=field_names())
    wanted = list(dict.fromkeys(ids))
    for i in range(0, len(wanted), BATCH):
        _erase_batch(backend, wanted[i : i + BATCH], result)
    if catch_up:
        backend.catch_up()
    return result


def _erase_batch(backend: Backend, ids: list[UUID], result: ErasureResult) -> None:
    app = backend.app
    assert app.data_keys is not None
    found = {s.id: s for s in app.get_sessions(ids)}
    plain: set[UUID] = {
        UUID(str(e.originator_id))
        for e in app.stored_events_of(list(found))
        if has_plain_personal_data(e)
    }
    todo: list[Session] = []
    for sid in ids:
        session = found.get(sid)
        if session is None:
            result.refused.append(Refused(session_id=sid, external_id="", reason="unknown session"))
        elif session.erased_at is not None:
            result.already_erased.append(_ref(session))
        elif sid in plain:
            result.refused.append(
                Refused(
                    session_id=sid,
                    external_id=session.external_id,
                    reason="stored before encryption was turned on: its personal data is in "
                    "the log in plain text, which deleting a key cannot erase",
                )
            )
        else:
            todo.append(session)
    if not todo:
        return
    app.data_keys.erase([s.id for s in todo], result.erased_at)
    for _ in range(5):
        for s in todo:
            s.erase_personal_data(result.actor, result.reason, result.fields, result.erased_at)
        saved = app.save_batch(todo)
        result.erased.extend(_ref(s) for s in saved.saved if isinstance(s, Session))
        if not saved.lost:
            return
        # Another writer appended first (a daemon working the session): load and record again.
        todo = [s for s in app.get_sessions([s.id for s in saved.lost]) if s.erased_at is None]
    if todo:
        raise ServiceError(
            f"{len(todo)} sessions are erased (their keys are gone) but the erasure could not "
            "be recorded: other writers kept changing them",
            hint="run the same erase again: it records what is missing",
        )


def _ref(session: Session) -> ErasedSession:
    return ErasedSession(session_id=session.id, external_id=session.external_id)
