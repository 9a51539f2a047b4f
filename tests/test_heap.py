"""The daemon's garbage-collector settings apply while it runs and are undone afterwards, also
when several daemons share one process."""

from __future__ import annotations

import gc
import threading
import weakref

from processors.runtime.heap import DAEMON_THRESHOLDS, daemon_heap


def test_thresholds_apply_inside_and_are_restored_after() -> None:
    before = gc.get_threshold()
    with daemon_heap():
        assert gc.get_threshold() == DAEMON_THRESHOLDS
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_overlapping_daemons_restore_only_when_the_last_one_leaves() -> None:
    before = gc.get_threshold()
    first_in, second_out = threading.Event(), threading.Event()
    seen: list[tuple[int, int, int]] = []

    def second() -> None:
        first_in.wait(60)
        with daemon_heap():
            pass
        seen.append(gc.get_threshold())  # the first daemon is still running
        second_out.set()

    t = threading.Thread(target=second)
    t.start()
    with daemon_heap():
        first_in.set()
        second_out.wait(5)
    t.join(60)
    assert not t.is_alive()
    assert seen == [DAEMON_THRESHOLDS]
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_cycles_are_still_collected_while_tuned() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    with daemon_heap():
        ref = weakref.ref(Node())
        assert ref() is not None  # a cycle: reference counting alone cannot free it
        # Containers that stay alive count towards the next young collection.
        kept: list[list[int]] = [[] for _ in range(DAEMON_THRESHOLDS[0] + 100)]
        assert ref() is None
    assert len(kept) > DAEMON_THRESHOLDS[0]
