"""The overview's fold, one session at a time: what each event adds to the stage x status
counts, and at which moment it takes effect.

"The overview at T" is the sum over sessions of what `history ID --at T` shows: each
session's events folded in order up to the first one stamped after T. A session's events
are usually stamped in order, but not always (clocks of several hosts, a paid call's answer
stamped when it arrived), so an event takes effect at its session's *effective time*: the
latest stamp of the session's events up to and including it. Effective times never go back
within a session, so "effective time <= T" picks exactly the prefix `history --at` folds.

The transitions are the domain's own (``event.apply`` on the stage states, as the status
projection does); this module keeps only a session's five overview buckets between events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.session import Session
from domain.stage_state import StageState, StageStates, new_states, on_imported
from domain.stages import STAGE_ORDER, Stage, Status
from projections.schema import RETRY_SCHEDULED
from projections.status import STATUS_EVENTS, buckets

TIMED_EVENTS: tuple[type[Any], ...] = (Session.AIUsageRecorded, Session.AIRequestSent)
"""Events that change no status but carry a stamp of their own (when a paid request left or
its answer arrived), which may be later than the next status event's."""
OVERVIEW_EVENTS: tuple[type[Any], ...] = STATUS_EVENTS + TIMED_EVENTS
"""What the fold reads. The data events (TranscriptFetched, ...) are left out: each is
stamped with the very time of the StageCompleted that follows it, so it never moves a
session's effective time."""

_CODE = {
    Status.PENDING: "P",
    Status.IN_PROGRESS: "I",
    Status.COMPLETED: "C",
    Status.FAILED: "F",
    Status.SKIPPED: "S",
}
RETRYING = "R"
"""FAILED with a retry time: the overview's RETRY_SCHEDULED bucket as well as FAILED."""
_STATUS = {code: status for status, code in _CODE.items()} | {RETRYING: Status.FAILED}
NONE = "-" * len(STAGE_ORDER)
"""A session that does not exist (yet): no stage counts."""


def code(state: StageState) -> str:
    """One letter for a stage's overview buckets (``buckets()`` of the status projection)."""
    if len(buckets(state)) > 1:
        return RETRYING
    return _CODE[state.status]


_BUCKETS: dict[str, tuple[str, ...]] = {"-": ()} | {
    letter: (status.value,) for letter, status in _STATUS.items() if letter != RETRYING
}
_BUCKETS[RETRYING] = (Status.FAILED.value, RETRY_SCHEDULED)
_STATUS_NAME: dict[str, str] = {"-": ""} | {k: v.value for k, v in _STATUS.items()}
STAGE_NAMES: tuple[str, ...] = tuple(s.value for s in STAGE_ORDER)


def code_buckets(letter: str) -> tuple[str, ...]:
    return _BUCKETS[letter]


def status_of(letter: str) -> str:
    return _STATUS_NAME[letter]


class _Stages:
    """What ``event.apply`` mutates: the stage states; session data it sets is dropped."""

    def __init__(self, stages: StageStates) -> None:
        self.__dict__["stages"] = stages

    def __setattr__(self, name: str, value: Any) -> None:
        pass  # row, transcript, ...: not the overview's


_SOMETIME = datetime(2000, 1, 1, tzinfo=UTC)
"""A retry time standing for "some": the buckets only ask whether there is one."""


class _CodedStates(dict[Stage, StageState]):
    """Stage states made from the codes on first use: an event touches one stage or a few,
    and the buckets after it need no more than the status and whether a retry is due."""

    def __init__(self, codes: str) -> None:
        super().__init__()
        self.codes = codes

    def __missing__(self, stage: Stage) -> StageState:
        letter = self.codes[stage.index]
        state = StageState(
            status=_STATUS[letter] if letter != "-" else Status.PENDING,
            retry_at=_SOMETIME if letter == RETRYING else None,
        )
        self[stage] = state
        return state

    def after(self) -> str:
        return "".join(
            code(self[s]) if s in self else self.codes[i] for i, s in enumerate(STAGE_ORDER)
        )


@dataclass
class Track:
    """A session between events: its company, effective time and stage codes."""

    company_id: UUID | None
    eff: datetime | None
    codes: str = NONE


@dataclass(frozen=True)
class Change:
    """One event's effect on the counts, from its effective time on."""

    eff: datetime
    company_id: UUID
    before: str
    after: str
    activity: tuple[tuple[str, str, str, Decimal | None], ...]
    """(kind, stage, detail, cost): imports, resets, failures, paid calls, status moves."""

    def deltas(self) -> Iterator[tuple[str, str, int]]:
        """(stage, bucket, +-1) for every bucket the event changed."""
        if self.before == self.after:
            return
        for stage, old, new in zip(STAGE_NAMES, self.before, self.after, strict=True):
            if old != new:
                for b in _BUCKETS[old]:
                    yield stage, b, -1
                for b in _BUCKETS[new]:
                    yield stage, b, 1


def _imported() -> str:
    states = new_states()
    on_imported(states, _SOMETIME)
    return "".join(code(states[s]) for s in STAGE_ORDER)


IMPORTED = _imported()
"""A session's codes right after its import (the domain's ``on_imported``)."""


def step(track: Track | None, event: Any) -> tuple[Track, Change | None]:
    """The session after ``event``, and what the event changed (None for an event of a
    session the fold never saw imported: it has nothing to count)."""
    if isinstance(event, Session.Imported):
        company = event.company_id
        before = NONE if track is None else track.codes
        eff = (
            event.timestamp
            if track is None or track.eff is None
            else max(track.eff, event.timestamp)
        )
        after = IMPORTED
        return Track(company, eff, after), Change(
            eff, company, before, after, (*_moves(before, after), ("imported", "", "", None))
        )
    if track is None or track.company_id is None:
        return Track(None, event.timestamp), None
    eff = event.timestamp if track.eff is None else max(track.eff, event.timestamp)
    before = track.codes
    after = before
    if isinstance(event, STATUS_EVENTS) and not isinstance(event, Session.LeaseExtended):
        states = _CodedStates(before)
        event.apply(_Stages(states))
        after = states.after()
    activity = (*_moves(before, after), *_activity(event))
    return Track(track.company_id, eff, after), Change(
        eff, track.company_id, before, after, activity
    )


def _moves(before: str, after: str) -> Iterator[tuple[str, str, str, Decimal | None]]:
    if before == after:
        return
    for stage, old, new in zip(STAGE_NAMES, before, after, strict=True):
        was, now = _STATUS_NAME[old], _STATUS_NAME[new]
        if was != now:
            yield "moved", stage, f"{was or '-'}>{now}", None


def _activity(event: Any) -> tuple[tuple[str, str, str, Decimal | None], ...]:
    if isinstance(event, Session.StageFailed):
        return (("failed", event.stage.value, event.error_type[:128], None),)
    if isinstance(event, Session.StageReset):
        return (("reset", event.stage.value, event.actor[:128], None),)
    if isinstance(event, Session.AIUsageRecorded):
        usage = event.usage
        return (("ai_call", event.stage.value, usage.model_requested[:128], usage.cost_eur),)
    return ()
