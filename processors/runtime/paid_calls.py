"""The hand-off of paid model requests between worker threads and the daemon's loop: the
intent of a request is stored before it is sent, its answer before anything else happens."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from uuid import UUID

from domain.errors import DomainError
from domain.payloads import AIRequestIntent, AIUsage
from domain.session import Session
from domain.stages import Stage, Status
from processors.runtime.flight import InFlight
from processors.stages.base import WorkReleased

Log = Callable[..., None]


@dataclass
class PaidCall:
    """A paid request's intent (before sending) or its answer (on arrival), for the loop to
    store; ``done`` tells the waiting worker it is stored."""

    key: tuple[UUID, Stage]
    attempt: int
    intent: AIRequestIntent | None = None
    usage: AIUsage | None = None
    done: Future[None] = field(default_factory=Future)
    fresh: bool = False
    """Load the session anew (another writer got there first)."""


def settle(call: PaidCall, error: BaseException | None) -> None:
    """Tells the waiting worker how it went (once)."""
    if call.done.done():
        return
    if not call.done.running() and not call.done.set_running_or_notify_cancel():
        return
    if error is None:
        call.done.set_result(None)
    else:
        call.done.set_exception(error)


class PaidCalls:
    def __init__(
        self,
        wake: threading.Event,
        why_not_start: Callable[[], str | None],
        intent_wait: float,
        usage_wait: float,
    ) -> None:
        self.wake = wake
        self.why_not_start = why_not_start
        self.intent_wait = intent_wait
        self.usage_wait = usage_wait
        self._queue: SimpleQueue[PaidCall] = SimpleQueue()
        self.backlog: list[PaidCall] = []
        """Calls taken from the queue but not yet stored (the database went away, or a
        write lost a race)."""

    # ------------------------------------------------------ worker threads
    def request_intent(
        self, key: tuple[UUID, Stage], attempt: int, intent: AIRequestIntent
    ) -> None:
        """Returns once the intent is stored; raises WorkReleased when the request must not
        be sent."""
        why = self.why_not_start()
        if why is not None:
            raise WorkReleased(why)
        call = PaidCall(key, attempt, intent=intent)
        self._put(call)
        try:
            call.done.result(timeout=self.intent_wait)
        except FutureTimeout:
            if call.done.cancel():
                raise WorkReleased(
                    f"its request could not be recorded within {self.intent_wait:.0f}s; not sent"
                ) from None
            call.done.result()  # being stored right now

    def usage_arrived(self, key: tuple[UUID, Stage], attempt: int, usage: AIUsage) -> None:
        """Returns once the paid answer is stored, or after ``usage_wait`` (the database is
        away: the daemon keeps it and stores it later)."""
        call = PaidCall(key, attempt, usage=usage)
        self._put(call)
        with contextlib.suppress(FutureTimeout):
            call.done.result(timeout=self.usage_wait)

    def _put(self, call: PaidCall) -> None:
        self._queue.put(call)
        self.wake.set()

    # ------------------------------------------------------------ the loop
    def take(self) -> list[PaidCall]:
        calls, self.backlog = self.backlog, []
        while True:
            try:
                calls.append(self._queue.get_nowait())
            except Empty:
                return calls

    @property
    def waiting(self) -> int:
        return len(self.backlog) + self._queue.qsize()

    def __bool__(self) -> bool:
        return bool(self.backlog) or not self._queue.empty()

    def apply(
        self,
        in_flight: dict[tuple[UUID, Stage], InFlight],
        find_session: Callable[[UUID], Session | None],
        refusing: str | None,
        log: Log,
    ) -> list[tuple[PaidCall, Session]]:
        """Applies the calls that came in to their sessions, for the loop's next write; an
        intent is refused (``refusing`` says why) while nothing could be recorded."""
        calls = self.take()
        applied: list[tuple[PaidCall, Session]] = []
        for i, call in enumerate(calls):
            if call.intent is not None and call.done.running() is False:
                if refusing is not None:
                    if call.done.set_running_or_notify_cancel():
                        call.done.set_exception(WorkReleased(refusing))
                    continue
                if not call.done.set_running_or_notify_cancel():
                    continue  # its worker gave up waiting: not sent, not recorded
                flight = in_flight.get(call.key)
                if flight is None or flight.attempt != call.attempt or flight.abandoned:
                    settle(call, WorkReleased("its attempt was given up"))
                    continue
            try:
                flight = in_flight.get(call.key)
                if flight is not None and not call.fresh:
                    session: Session | None = flight.session
                else:
                    session = find_session(call.key[0])
            except Exception:
                self.backlog.extend(calls[i:])
                raise
            if session is None:
                settle(call, WorkReleased("its session is gone"))
            elif self._record(call, session, log):
                applied.append((call, session))
        return applied

    @staticmethod
    def _record(call: PaidCall, session: Session, log: Log) -> bool:
        if call.intent is not None and call.fresh:
            # Our last write of it lost a race, or its reply: stored already, send it; the
            # claim taken over or reset meanwhile, do not.
            state = session.stages[call.key[1]]
            if call.intent.client_request_id in session.ai_requests:
                settle(call, None)
                return False
            if state.status is not Status.IN_PROGRESS or state.attempt != call.attempt:
                settle(call, WorkReleased("its claim was taken over"))
                return False
        try:
            if call.intent is not None:
                session.record_ai_request(call.key[1], call.attempt, call.intent)
            else:
                assert call.usage is not None
                session.record_ai_usage(call.key[1], call.attempt, call.usage)
        except DomainError as e:
            log("ai_call_unrecorded", session=str(session.id), error=str(e))
            settle(call, WorkReleased(str(e)))
            return False
        return True

    def stored(self, applied: list[tuple[PaidCall, Session]], log: Log, saved: set[UUID]) -> None:
        for call, session in applied:
            if session.id in saved:
                settle(call, None)
            else:  # applied anew to the latest state next turn (it may be stored already)
                call.fresh = True
                self.backlog.append(call)
                log("ai_call_retried", session=str(session.id))
