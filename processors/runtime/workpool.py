"""A bounded pool of worker threads whose stuck tasks can be given up without losing a slot.

`concurrent.futures.ThreadPoolExecutor` keeps a slot for as long as a task's thread runs and
joins every worker thread at interpreter exit: one call that never returns (a host that sends a
byte a second) holds a slot forever and keeps the process from exiting. Here the threads are
daemon threads, and ``abandon`` retires the thread of a task given up at its timeout: a fresh
thread takes the slot at once, and the old one ends on its own whenever its call returns.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class WorkPool:
    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one thread")
        self.size = size
        self.name = name
        self._queue: deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = deque()
        self._cond = threading.Condition()
        self._running: dict[Future[Any], int] = {}
        """Running task -> the ident of its thread."""
        self._retired: set[int] = set()
        self._threads = 0
        self._closed = False
        self._serial = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError(f"pool {self.name} is shut down")
            self._queue.append((future, fn, args))
            if self._threads < self.size:
                self._spawn()
            self._cond.notify()
        return future

    def abandon(self, future: Future[Any]) -> bool:
        """Gives up a task: a queued one is cancelled; a running one's thread is retired and
        replaced, so the slot is free now. True when the task was running."""
        if future.cancel():
            return False
        with self._cond:
            ident = self._running.pop(future, None)
            if ident is None:
                return False
            self._retired.add(ident)
            self._threads -= 1
            if self._queue and not self._closed:
                self._spawn()
        return True

    @property
    def stuck(self) -> int:
        """Retired threads still inside a call that was given up."""
        with self._cond:
            return len(self._retired)

    def shutdown(self) -> None:
        """Cancels what waits; running tasks finish on their (daemon) threads, unwaited."""
        with self._cond:
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for future, _fn, _args in queued:
            future.cancel()

    # ------------------------------------------------------------- threads
    def _spawn(self) -> None:
        self._threads += 1
        self._serial += 1
        thread = threading.Thread(
            target=self._work, name=f"{self.name}-{self._serial}", daemon=True
        )
        thread.start()

    def _work(self) -> None:
        me = threading.get_ident()
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:  # closed and drained
                    self._threads -= 1
                    return
                future, fn, args = self._queue.popleft()
                if not future.set_running_or_notify_cancel():
                    continue
                self._running[future] = me
            try:
                result = fn(*args)
            except BaseException as e:
                future.set_exception(e)
                del e
            else:
                future.set_result(result)
                del result
            del fn, args  # an idle thread must not keep its last task (and its session) alive
            with self._cond:
                if me in self._retired:  # given up meanwhile: its slot went to another thread
                    self._retired.discard(me)
                    return
                self._running.pop(future, None)
            del future
