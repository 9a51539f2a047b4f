"""Two daemons' gates (processors/runtime/pauses.py) on one database: what one decides, the
other honours after its next read: a breaker one opened holds for both, only one of them gets
the probe, and the probe's success reopens the stage for both; an operator's pause holds for
the company it names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from domain.breaker import BreakerRules
from domain.company import Company
from domain.session import Session
from domain.stages import Stage
from processors.runtime.config import DaemonConfig
from processors.runtime.pauses import StageGate
from processors.stages.base import StageError
from projections.work import due_rows
from tests.factories import row
from tests.harness import runtime

AI = Stage.AI_ANALYSIS
RULES = BreakerRules(window=4, ratio=0.5, cool_down=5, max_cool_down=20, probe_timeout=60)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def gate(
    rt: Any, worker: str, clock: Clock, logged: list[tuple[str, str]], stages: Any = (AI,)
) -> StageGate:
    config = DaemonConfig(worker_id=worker, circuit_breaker=RULES, providers={AI: "llm.test"})
    return StageGate(
        rt.app, config, list(stages), clock, lambda kind, **_: logged.append((worker, kind)), {}
    )


def session(company: Any = None, url: str | None = "https://t.example/x.txt") -> Session:
    """A session of its own (a new external id each time)."""
    return Session.import_row(
        company or uuid4(), row(uuid4().hex, url), "test.csv", datetime(2026, 12, 1, tzinfo=UTC)
    )


def test_two_daemons_share_one_breaker_and_one_probe(database_url: str) -> None:
    clock, logged = Clock(), []
    company = uuid4()
    with runtime(database_url) as rt:
        one, two = gate(rt, "d1", clock, logged), gate(rt, "d2", clock, logged)
        for g in (one, two):
            g.refresh()
        down = StageError("server_error", "HTTP 503: down", True)
        one.observe(AI, session(), None)
        one.observe(AI, session(), StageError("bad_request", "HTTP 400", False))  # not counted
        one.observe(AI, session(), down)
        assert one.why_wait(AI, company) is None  # the window is not full yet
        one.observe(AI, session(), down)  # 2 of the last 4
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
        probe = session(company)
        prober.claimed(AI, probe)
        assert prober.why_wait(AI, company, probe.id) is None  # the probe may start
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


FETCH = Stage.TRANSCRIPT_FETCH


def test_a_transcript_origin_has_a_breaker_of_its_own(database_url: str) -> None:
    """A dead transcript host stops the fetches from it, not those from other hosts; its
    sessions are left out of the due query until its probe is due, and one probe goes."""
    clock, logged = Clock(), []
    company = uuid4()
    with runtime(database_url) as rt:
        g = gate(rt, "d1", clock, logged, stages=(FETCH, AI))
        g.refresh()
        dead = [session(company, f"http://dead.test:8080/{i}.txt") for i in range(5)]
        alive = session(company, "https://alive.test/ok.txt")
        down = StageError("http_503", "Service Unavailable", True)
        for s in dead[:2]:
            g.observe(FETCH, s, StageError("connection_error", "refused", True))
        for s in dead[2:4]:
            g.observe(FETCH, s, down)  # a host's 5xx counts too: 4 of the last 4
        assert "circuit breaker open" in (g.why_wait_for(FETCH, dead[4]) or "")
        assert g.why_wait_for(FETCH, alive) is None and g.admits(FETCH, alive)
        assert not g.admits(FETCH, dead[4]) and g.room(FETCH, 8) == 8
        g.flush()
        assert g.held_origins(FETCH) == ["http://dead.test:8080"]
        assert rt.app.pipeline(clock.now).breaker(FETCH, "http://dead.test:8080").phase == "open"

        clock.now += timedelta(seconds=RULES.cool_down)
        assert g.held_origins(FETCH) == []  # its probe is due: a session may come up for it
        assert g.admits(FETCH, dead[4])  # takes the probe
        g.claimed(FETCH, dead[4])
        running: dict[Any, Any] = g.in_flight  # type: ignore[assignment]
        running[(dead[4].id, FETCH)] = "the probe's flight"
        assert not g.admits(FETCH, dead[0]), "one probe at a time"
        assert g.why_wait_for(FETCH, dead[4]) is None and g.why_wait_for(FETCH, dead[0])
        g.observe(FETCH, dead[4], None)  # the host answered
        del running[(dead[4].id, FETCH)]
        g.flush()
        assert g.why_wait_for(FETCH, dead[0]) is None and g.held_origins(FETCH) == []
        assert ("d1", "breaker_closed") in logged


def test_the_due_query_leaves_out_a_held_origin(database_url: str) -> None:
    with runtime(database_url) as rt:
        c = Company.register("Hosts", "https://csv.test/x.csv", datetime(2026, 12, 1, tzinfo=UTC))
        rt.app.register_company(c)
        urls = {
            "default port": "https://dead.test/a.txt",
            "port written": "https://dead.test:443/b.txt",
            "user info": "https://u:p@DEAD.test/c.txt",
            "other port": "https://dead.test:8443/d.txt",
            "other host": "https://alive.test/e.txt",
            "look-alike": "https://dead.test.example/f.txt",
        }
        made = {k: session(c.id, u) for k, u in urls.items()}
        rt.app.save_batch(list(made.values()))
        rt.runner.catch_up()
        names = {s.id: k for k, s in made.items()}
        with rt.engine.connect() as conn:
            now = datetime(2026, 12, 2, tzinfo=UTC)
            every = due_rows(conn, FETCH, now, [c.id], 50)
            held = due_rows(conn, FETCH, now, [c.id], 50, held_origins=["https://dead.test:443"])
        assert {names[sid] for sid, _ in every} == set(urls)
        assert {names[sid] for sid, _ in held} == {"other port", "other host", "look-alike"}
