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

from domain.payloads import AIRequestIntent, AIUsage
from domain.stages import Stage
from processors.stages.base import WorkReleased


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
