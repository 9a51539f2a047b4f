"""The status projection: `session_stage_status`, `pipeline_overview` and `sessions`.

It applies the aggregate's own event handlers to the stored rows, so the status table is by
construction the fold of the events; only the batching and the SQL are its own.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, update

from domain.csv_rows import SourceRow
from domain.session import Session
from domain.stage_state import StageState, StageStates, new_states, on_imported
from domain.stages import STAGE_ORDER, Stage, Status
from domain.urls import redact
from projections.bulk import SESSION_ROWS, STAGE_ROWS, Row
from projections.ready import QUEUED, ready_since
from projections.runner import Event
from projections.schema import (
    RETRY_SCHEDULED,
    pipeline_overview,
    session_stage_status,
    sessions,
    stage_ready,
)
from projections.upsert import upsert

STATUS_EVENTS: tuple[type[Any], ...] = (
    Session.Imported,
    Session.SourceRowChanged,
    Session.StageStarted,
    Session.StageCompleted,
    Session.StageFailed,
    Session.StageSkipped,
    Session.StageReset,
    Session.StageReleased,
    Session.LeaseExtended,
)


def buckets(state: StageState) -> tuple[str, ...]:
    """The overview counters one stage row contributes to."""
    if state.status is Status.FAILED and state.retry_at is not None:
        return (state.status.value, RETRY_SCHEDULED)
    return (state.status.value,)


_SESSION_DATA = frozenset(
    {
        "row",
        "source",
        "transcript",
        "messages",
        "fields",
        "analysis",
        "analysis_provider",
        "analysis_model",
        "analysis_from_attempt",
        "questions",
    }
)
"""Session data that status events also set (a changed row clears them): not status."""


@dataclass
class _Tracked:
    """A session's stage states while a page is applied (what ``event.apply`` mutates)."""

    company_id: UUID
    external_id: str
    stages: StageStates
    before: dict[Stage, tuple[str, ...]]
    """The overview buckets of each touched stage before this page (empty: no row yet)."""
    touched: set[Stage] = field(default_factory=set)
    ready_before: dict[Stage, datetime | None] = field(default_factory=dict)
    """The `stage_ready` time before this page of each queued stage a touched one affects."""

    def touch(self, stages: Iterable[Stage]) -> None:
        """Remembers the buckets of stages an event is about to change, once per page, and
        whether they and the stage after each waited for a worker."""
        for stage in stages:
            if stage not in self.touched:
                self.touched.add(stage)
                self.before[stage] = self.buckets_now(stage)
                for queued in (stage, stage.next):
                    if queued in QUEUED and queued not in self.ready_before:
                        self.ready_before[queued] = self.ready_now(queued)

    def ready_now(self, stage: Stage) -> datetime | None:
        stages = self.stages
        if isinstance(stages, _StoredStages) and not stages.stored(stage):
            return None  # no row yet
        return ready_since(stages, stage)

    def buckets_now(self, stage: Stage) -> tuple[str, ...]:
        stages = self.stages
        if isinstance(stages, _StoredStages) and not stages.stored(stage):
            return ()
        return buckets(stages[stage])

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.__dataclass_fields__:
            object.__setattr__(self, name, value)
        elif name not in _SESSION_DATA:
            # An event handler changed something this projection neither keeps nor knows to
            # leave alone: say so, instead of silently dropping what may be status.
            raise AttributeError(f"the status projection does not know session field {name!r}")


@dataclass(frozen=True)
class Known:
    """A session as an aggregate loaded at ``version`` holds it: what the status projection
    holds for it when it is about to apply event ``version + 1``."""

    session_id: UUID
    version: int
    company_id: UUID
    external_id: str
    stages: StageStates


def known(session: Session) -> Known:
    """A copy of the session's state now, before a command changes it."""
    return Known(
        session.id,
        session.version,
        session.company_id,
        session.external_id,
        {st: replace(state, metadata=dict(state.metadata)) for st, state in session.stages.items()},
    )


class _StoredStages(dict[Stage, StageState]):
    """A session's stage rows as read from the table, each decoded on first use: a page
    usually touches one or two of a session's five stages, and decoding a row (datetimes,
    UUIDs, JSON) costs more than reading it."""

    def __init__(self, dialect: str, raw: dict[Stage, Row]) -> None:
        super().__init__()
        self.dialect = dialect
        self.raw = raw

    def stored(self, stage: Stage) -> bool:
        return stage in self or stage in self.raw

    def __missing__(self, stage: Stage) -> StageState:
        row = self.raw.pop(stage, None)
        state = (
            StageState() if row is None else state_from_row(STAGE_ROWS.decode(self.dialect, row))
        )
        self[stage] = state
        return state


_AT = {name: i for i, name in enumerate(STAGE_ROWS.columns)}
"""Where each column of a stage row is: rows are addressed by column name."""
_STATE_COLUMNS = tuple(
    c for c in STAGE_ROWS.columns if c not in ("session_id", "stage", "company_id", "external_id")
)
_SESSION_AT = {name: i for i, name in enumerate(SESSION_ROWS.columns)}


def state_from_row(row: Row) -> StageState:
    """A stage row (in ``STAGE_ROWS`` column order) as the domain's stage state."""
    values = {c: row[_AT[c]] for c in _STATE_COLUMNS}
    values["status"] = Status(values["status"])
    values["metadata"] = dict(values["metadata"] or {})
    return StageState(**values)


def row_from_state(session_id: UUID, tracked: _Tracked, stage: Stage) -> Row:
    s = tracked.stages[stage]
    values = {c: getattr(s, c) for c in _STATE_COLUMNS}
    values.update(
        session_id=session_id,
        stage=stage.value,
        company_id=tracked.company_id,
        external_id=tracked.external_id,
        status=s.status.value,
    )
    return tuple(values[c] for c in STAGE_ROWS.columns)


class StatusProjection:
    """Keeps the rows it wrote last in memory (an LRU of sessions): the next page of a busy
    pipeline touches the same sessions again, and reading them back would cost a query per
    page. The runner calls ``forget`` whenever another writer moved the projection."""

    name = "session_status"
    topics = tuple(cls.TOPIC for cls in STATUS_EVENTS)
    tables: tuple[str, ...] = (
        session_stage_status.name,
        pipeline_overview.name,
        sessions.name,
        stage_ready.name,
    )

    def __init__(self, cache_sessions: int = 4_000) -> None:
        self.cache_sessions = cache_sessions
        self._cache: OrderedDict[UUID, _Tracked] = OrderedDict()
        self._known: dict[UUID, Known] = {}
        self.known_used = 0
        """Sessions taken from known states instead of read (benchmarks and tests count it)."""

    def know(self, sessions: Iterable[Known]) -> None:
        """States of sessions this process just loaded from the store (a daemon's claims):
        the next page takes a session's rows from here instead of reading them, when its
        first event there directly follows the known version. That check is enough: events
        of one aggregate reach the log in version order, so a projection about to apply
        version v + 1 has applied exactly versions 1..v, which is what the aggregate held."""
        for k in sessions:
            self._known[k.session_id] = k

    def forget(self) -> None:
        self._cache.clear()

    def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        first: dict[UUID, int] = {}
        for e in events:
            first.setdefault(e.originator_id, e.originator_version)
        tracked = self._load(conn, first)
        new_sessions: list[Row] = []
        changed_rows: dict[UUID, Row] = {}
        for event in events:
            sid = event.originator_id
            if isinstance(event, Session.Imported):
                states = new_states()
                on_imported(states, event.timestamp)
                before: dict[Stage, tuple[str, ...]] = {s: () for s in STAGE_ORDER}
                ready: dict[Stage, datetime | None] = dict.fromkeys(QUEUED)
                previous = tracked.get(sid)
                if previous is not None:  # re-created after a rebuild gap: keep counts right
                    previous.touch(STAGE_ORDER)
                    before = previous.before
                    ready = previous.ready_before
                tracked[sid] = _Tracked(
                    event.company_id, event.external_id, states, before, set(STAGE_ORDER), ready
                )
                new_sessions.append(_session_row(sid, event.company_id, event.row, event.timestamp))
                continue
            t = tracked.get(sid)
            if t is None:
                raise LookupError(f"event {type(event).__name__} for unknown session {sid}")
            t.touch(_stages_touched(event))
            event.apply(t)  # type: ignore[attr-defined]
            if isinstance(event, Session.SourceRowChanged):
                changed_rows[sid] = _session_row(sid, t.company_id, event.row, event.timestamp)
        self._write(conn, tracked, new_sessions, changed_rows)
        self._remember(tracked)

    def _remember(self, tracked: dict[UUID, _Tracked]) -> None:
        for sid, t in tracked.items():
            self._cache[sid] = t
            self._cache.move_to_end(sid)
        while len(self._cache) > self.cache_sessions:
            self._cache.popitem(last=False)

    def _load(self, conn: Connection, first: dict[UUID, int]) -> dict[UUID, _Tracked]:
        """The page's sessions, from memory where it can (cache, known states), else read;
        ``first`` maps each to the version of its first event in the page."""
        tracked: dict[UUID, _Tracked] = {}
        missing = []
        known, self._known = self._known, {}
        for sid, version in first.items():
            cached = self._cache.get(sid)
            if cached is None:
                k = known.get(sid)
                if k is not None and k.version + 1 == version:
                    tracked[sid] = _Tracked(k.company_id, k.external_id, k.stages, {})
                    self.known_used += 1
                elif version > 1:  # a session's rows are written by its earlier events only
                    missing.append(sid)
                continue
            cached.before = {}
            cached.touched = set()
            cached.ready_before = {}
            tracked[sid] = cached
        dialect = conn.dialect.name
        for row in STAGE_ROWS.load_raw(conn, "session_id", sorted(missing)):
            # Only the key columns are decoded here; the rest when a stage is first used.
            sid = _uuid(row[_AT["session_id"]])
            t = tracked.get(sid)
            if t is None:
                company = _uuid(row[_AT["company_id"]])
                t = _Tracked(company, row[_AT["external_id"]], _StoredStages(dialect, {}), {})
                tracked[sid] = t
            assert isinstance(t.stages, _StoredStages)
            t.stages.raw[Stage(row[_AT["stage"]])] = row
        return tracked

    def _write(
        self,
        conn: Connection,
        tracked: dict[UUID, _Tracked],
        new_sessions: list[Row],
        changed_rows: dict[UUID, Row],
    ) -> None:
        """One statement (or a few) per table for the whole page."""
        STAGE_ROWS.upsert(
            conn,
            [row_from_state(sid, t, stage) for sid, t in tracked.items() for stage in t.touched],
        )
        _write_overview(conn, tracked)
        _write_ready(conn, tracked)
        _write_sessions(conn, new_sessions, changed_rows)

    def clear(self, conn: Connection) -> None:
        conn.execute(delete(stage_ready))
        conn.execute(delete(session_stage_status))
        conn.execute(delete(pipeline_overview))
        conn.execute(delete(sessions))


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


def _stages_touched(event: Event) -> Iterable[Stage]:
    if isinstance(event, Session.SourceRowChanged):
        return STAGE_ORDER
    stage: Stage = event.stage  # type: ignore[attr-defined]
    if isinstance(event, Session.StageReset):
        return stage.and_later()
    return (stage,)


def _session_row(sid: UUID, company_id: UUID, row: SourceRow, at: datetime) -> Row:
    return (
        sid,
        company_id,
        row.external_id,
        row.fingerprint(),
        row.start_time,
        row.end_time,
        redact(row.transcript_url) if row.transcript_url else None,  # rows imported before
        at,
        at,
    )


def _write_overview(conn: Connection, tracked: dict[UUID, _Tracked]) -> None:
    """The page's net change to each (company, stage, status) count."""
    deltas: Counter[tuple[UUID, str, str]] = Counter()
    for t in tracked.values():
        for stage in t.touched:
            old = t.before[stage]
            new = buckets(t.stages[stage])
            if old != new:
                for bucket in old:
                    deltas[(t.company_id, stage.value, bucket)] -= 1
                for bucket in new:
                    deltas[(t.company_id, stage.value, bucket)] += 1
    upsert(
        conn,
        pipeline_overview,
        [
            {"company_id": c, "stage": s, "status": st, "count": n}
            for (c, s, st), n in sorted(deltas.items(), key=lambda kv: str(kv[0]))
            if n
        ],
        ("company_id", "stage", "status"),
        add=("count",),
    )
    if any(n < 0 for n in deltas.values()):
        conn.execute(delete(pipeline_overview).where(pipeline_overview.c.count == 0))


def _write_ready(conn: Connection, tracked: dict[UUID, _Tracked]) -> None:
    """Since when each queued stage has been ready, where that changed."""
    ready: list[dict[str, Any]] = []
    unready: dict[Stage, list[UUID]] = {}
    for sid, t in tracked.items():
        for stage, was in t.ready_before.items():
            since = t.ready_now(stage)
            if since == was:
                continue
            if since is None:
                unready.setdefault(stage, []).append(sid)
            else:
                ready.append(
                    {"session_id": sid, "stage": stage.value, "company_id": t.company_id,
                     "since": since}
                )  # fmt: skip
    for stage, ids in unready.items():
        conn.execute(
            delete(stage_ready).where(
                stage_ready.c.stage == stage.value, stage_ready.c.session_id.in_(ids)
            )
        )
    upsert(conn, stage_ready, ready, ("session_id", "stage"))


_CHANGED_SESSION_COLUMNS = (
    "row_fingerprint",
    "start_time",
    "end_time",
    "transcript_url",
    "updated_at",
)


def _write_sessions(conn: Connection, new: list[Row], changed: dict[UUID, Row]) -> None:
    SESSION_ROWS.upsert(conn, new)
    for sid, r in changed.items():
        conn.execute(
            update(sessions)
            .where(sessions.c.session_id == sid)
            .values({c: r[_SESSION_AT[c]] for c in _CHANGED_SESSION_COLUMNS})
        )
