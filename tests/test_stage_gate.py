"""Two daemons' gates (processors/runtime/pauses.py) on one database: what one decides, the
other honours after its next read: a breaker one opened holds for both, only one of them gets
the probe, and the probe's success reopens the stage for both; an operator's pause holds for
the company it names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from domain.breaker import BreakerRules
from domain.stages import Stage
from processors.runtime.config import DaemonConfig
from processors.runtime.pauses import StageGate
from processors.stages.base import StageError
from tests.harness import runtime

AI = Stage.AI_ANALYSIS
RULES = BreakerRules(window=4, ratio=0.5, cool_down=5, max_cool_down=20, probe_timeout=60)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def gate(rt: Any, worker: str, clock: Clock, logged: list[tuple[str, str]]) -> StageGate:
    config = DaemonConfig(worker_id=worker, circuit_breaker=RULES, providers={AI: "llm.test"})
    return StageGate(
        rt.app, config, [AI], clock, lambda kind, **_: logged.append((worker, kind)), {}
    )


def test_two_daemons_share_one_breaker_and_one_probe(database_url: str) -> None:
    clock, logged = Clock(), []
    company = uuid4()
    with runtime(database_url) as rt:
        one, two = gate(rt, "d1", clock, logged), gate(rt, "d2", clock, logged)
        for g in (one, two):
            g.refresh()
        down = StageError("server_error", "HTTP 503: down", True)
        one.observe(AI, uuid4(), None)
        one.observe(AI, uuid4(), StageError("bad_request", "HTTP 400", False))  # not counted
        one.observe(AI, uuid4(), down)
        assert one.why_wait(AI, company) is None  # the window is not full yet
        one.observe(AI, uuid4(), down)  # 2 of the last 4
        assert "circuit breaker open" in (one.why_wait(AI, company) or "")  # here at once
        assert two.why_wait(AI, company) is None  # the other has not read it yet
        one.flush()
        two.refresh()
        assert "circuit breaker open" in (two.why_wait(AI, company) or "")
        assert ("d2", "breaker_open") in logged
        assert one.room(AI, 8) == two.room(AI, 8) == 0  # cooling down
        clock.now += timedelta(seconds=RULES.cool_down)
        rooms = [one.room(AI, 8), two.room(AI, 8)]
        assert sorted(rooms) == [0, 1]  # one probe, for one daemon
        prober, other = (one, two) if rooms[0] else (two, one)
        probe = uuid4()
        prober.claimed(AI, probe)
        assert prober.why_wait(AI, company, probe) is None  # the probe may start
        assert prober.why_wait(AI, company, uuid4()) is not None  # nothing else
        assert prober.room(AI, 8) == 1  # its claim is not in flight (lost): another may go
        prober.claimed(AI, probe)
        prober.observe(AI, probe, None)
        assert prober.why_wait(AI, company) is None
        prober.flush()
        other.refresh()
        assert other.why_wait(AI, company) is None and other.room(AI, 8) == 8
        assert (other.worker, "breaker_closed") in logged


def test_a_company_pause_holds_for_that_company(database_url: str) -> None:
    clock, logged = Clock(), []
    paused, other = uuid4(), uuid4()
    with runtime(database_url) as rt:
        g = gate(rt, "d1", clock, logged)
        g.refresh()
        rt.app.change_pipeline(
            lambda p: p.pause(AI, paused, "P", "budget", "alice", clock.now), clock.now
        )
        assert g.why_wait(AI, paused) is None  # until the next read
        g.refresh()
        assert g.why_wait(AI, paused) == "AI_ANALYSIS paused by alice: budget"
        assert g.why_wait(AI, other) is None and not g.paused_everywhere(AI)
        assert ("d1", "stage_paused") in logged
