"""Fairness between companies inside one daemon: a company's backlog must not make another
company's few fresh sessions wait behind all of it (`run --fairness company`, the default)."""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, text

from cli.bootstrap import build_processors
from cli.runtime import Runtime
from cli.settings import Settings
from domain.company import Company
from domain.session import Session
from domain.stages import Stage
from processors.clock import utc_now
from processors.runtime.candidates import Candidates
from processors.runtime.config import DaemonConfig, StageConfig
from processors.runtime.daemon import Daemon
from processors.runtime.reporting import JsonLogReporter
from projections.store import create_schema
from projections.work import due_rows
from tests.factories import Clock, row
from tests.harness import runtime
from tests.servers import RouteServer
from tests.servers import text as text_route

FETCH, CREATE = Stage.TRANSCRIPT_FETCH, Stage.SESSION_CREATION
TRANSCRIPT = (
    "[01.10.2026 10:00:05] User: Hallo, wat zijn jullie openingstijden?\n"
    "[01.10.2026 10:00:09] Assistant: We zijn open van 9 tot 5.\n"
)


# ----------------------------------------------------------------- the daemon's queues


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=5),
    takes=st.lists(st.integers(min_value=1, max_value=17), min_size=1, max_size=40),
)
def test_companies_take_turns_in_the_queue(sizes: list[int], takes: list[int]) -> None:
    """Whatever was queued first and however much each claim takes, no company with work
    left gets more than one pick ahead of another that still has work."""
    companies = [uuid4() for _ in sizes]
    queues = Candidates([FETCH], fair=True)
    owner: dict[UUID, UUID] = {}
    for company, n in zip(companies, sizes, strict=True):  # each company's work in one go
        ids = [uuid4() for _ in range(n)]
        owner.update(dict.fromkeys(ids, company))
        queues.add(FETCH, ids, company)
    picked: Counter[UUID] = Counter()
    for limit in takes:
        for sid in queues.take(FETCH, limit, ()):
            picked[owner[sid]] += 1
        waiting = [c for c, n in zip(companies, sizes, strict=True) if picked[c] < n]
        if waiting:
            counts = [picked[c] for c in waiting]
            assert max(counts) - min(counts) <= 1
    assert sum(picked.values()) == min(sum(sizes), sum(takes))  # nothing lost on the way


def test_a_backlog_does_not_hide_fresh_work_and_fifo_keeps_the_order() -> None:
    a, b = uuid4(), uuid4()
    backlog, fresh = [uuid4() for _ in range(1000)], [uuid4() for _ in range(5)]
    for fair in (True, False):
        queues = Candidates([FETCH], fair=fair)
        queues.add(FETCH, backlog, a)
        queues.add(FETCH, fresh, b)
        first = queues.take(FETCH, 10, ())
        if fair:
            assert set(fresh) <= set(first)
            assert queues.others_waiting(FETCH, b) and not queues.others_waiting(FETCH, a)
        else:
            assert first == backlog[:10]


def test_news_without_a_company_learns_it_and_joins_its_turn() -> None:
    a, b = uuid4(), uuid4()
    queues = Candidates([FETCH], fair=True)
    queues.add(FETCH, [uuid4() for _ in range(50)], a)
    stranger = uuid4()
    queues.add(FETCH, [stranger])  # another writer's news: its company is not known here
    assert queues.unknown() == [stranger]
    assert queues.others_waiting(FETCH, a)  # unknown counts as someone else
    queues.learn({stranger: b})
    assert queues.unknown() == []
    assert stranger in queues.take(FETCH, 2, ())


# ---------------------------------------------------------------- due work by company


def _backlog(rt: Runtime, clock: Clock, a: UUID, b: UUID, n: int, m: int) -> list[Session]:
    """n sessions of a, then m of b, imported in that order; of every one the fetch is done
    (creation ready) except for the last tenth of a's and b's last one."""
    sessions = []
    for company, count, prefix in ((a, n, "a"), (b, m, "b")):
        for i in range(count):
            clock.advance(0.001)
            sessions.append(
                Session.import_row(company, row(external_id=f"{prefix}{i}"), "t.csv", clock())
            )
    rt.app.save_batch(sessions)
    now = clock()
    for s in sessions:
        attempt = s.start_stage(FETCH, "w", now + timedelta(seconds=60), now)
        s.complete_stage(FETCH, attempt, now, {})
    clock.advance(1)
    rt.app.save_batch(sessions)
    rt.runner.catch_up()
    return sessions


@pytest.mark.parametrize("stage", [FETCH, CREATE])
def test_due_work_by_company_offers_the_fresh_company_within_the_first_picks(
    database_url: str, stage: Stage
) -> None:
    """FETCH reads PENDING status rows, CREATION the `stage_ready` rows: both per company."""
    clock = Clock()
    a, b = uuid4(), uuid4()
    n, m = 300, 5
    with runtime(database_url) as rt:
        if stage is FETCH:  # imported only: every fetch PENDING, oldest first
            for company, count, prefix in ((a, n, "a"), (b, m, "b")):
                batch = []
                for i in range(count):
                    clock.advance(0.001)
                    batch.append(
                        Session.import_row(
                            company, row(external_id=f"{prefix}{i}"), "t.csv", clock()
                        )
                    )
                rt.app.save_batch(batch)
            rt.runner.catch_up()
        else:
            _backlog(rt, clock, a, b, n, m)
        with rt.engine.connect() as conn:
            fair = due_rows(conn, stage, clock(), [a, b], 100, per_company=True)
            fifo = due_rows(conn, stage, clock(), [a, b], 100)
            fair_b = due_rows(conn, stage, clock(), [b, a], 100, per_company=True)
    assert len(fair) == len(fifo) == 100
    firsts = [c for _, c in fair[: 2 * m]]
    assert firsts.count(b) == m, "b's sessions were not among the first picks"
    assert [c for _, c in fifo] == [a] * 100, "fifo: oldest first, whatever the company"
    assert [c for _, c in fair_b[: 2 * m]] == [b, a] * m
    assert [sid for sid, c in fair if c == a] == [sid for sid, _ in fifo[: 100 - m]]


def test_the_per_company_indexes_are_added_to_an_existing_database(database_url: str) -> None:
    names = ("ix_sss_stage_company_status_updated", "ix_stage_ready_stage_company_since")
    with runtime(database_url) as rt:
        with rt.engine.begin() as conn:
            for name in names:
                conn.execute(text(f"DROP INDEX {name}"))
        indexes = {
            ix["name"]
            for t in ("session_stage_status", "stage_ready")
            for ix in inspect(rt.engine).get_indexes(t)
        }
        assert not indexes & set(names)
        create_schema(rt.engine)  # as `livedash init` / the next start does
        indexes = {
            ix["name"]
            for t in ("session_stage_status", "stage_ready")
            for ix in inspect(rt.engine).get_indexes(t)
        }
        assert set(names) <= indexes


# --------------------------------------------------------------------- the real daemon

HARD_CAP = 120.0


def _run(url: str, fair: bool, backlog: int, fresh: int) -> tuple[int, int]:
    """A backlog of company A, then a few fresh sessions of company B, through the daemon's
    TRANSCRIPT_FETCH and SESSION_CREATION until idle. Returns how many of A's sessions were
    done before B's last one, and how many of A's there are."""
    server = RouteServer({"/t.txt": text_route(TRANSCRIPT)}).start()
    try:
        with runtime(url) as rt:
            a = rt.app.register_company(Company.register("A", "a.csv", utc_now()))
            b = rt.app.register_company(Company.register("B", "b.csv", utc_now()))
            sessions: dict[UUID, list[Session]] = {}
            for company, n, prefix in ((a, backlog, "a"), (b, fresh, "b")):
                batch = [
                    Session.import_row(
                        company.id,
                        row(external_id=f"{prefix}{i}", url=server.url("/t.txt")),
                        "t.csv",
                        utc_now(),
                    )
                    for i in range(n)
                ]
                rt.app.save_batch(batch)
                sessions[company.id] = batch
            rt.runner.catch_up()
            configs = {
                FETCH: StageConfig(concurrency=4, queue_depth=8),
                CREATE: StageConfig(concurrency=2, queue_depth=4),
            }
            config = DaemonConfig(
                worker_id="fair",
                stages=(FETCH, CREATE),
                stage_configs=configs,
                until_idle=True,
                idle_horizon=0,
                poll_interval=0.05,
                level_interval=0.2,
                company_fairness=fair,
            )
            settings_ = Settings(database_url=url, fetch_allow_hosts=("127.0.0.1",))
            stream = io.StringIO()
            daemon = Daemon(
                rt.app,
                rt.runner,
                build_processors(settings_, {}.get),
                config,
                utc_now,
                JsonLogReporter(stream=stream),
            )
            watchdog = threading.Timer(HARD_CAP, daemon.request_stop)
            watchdog.start()
            try:
                summary = daemon.run()
            finally:
                watchdog.cancel()
            log = [json.loads(line) for line in stream.getvalue().splitlines()]
            assert summary.stopped_by == "idle", log[-3:]
            assert summary.completed.get(CREATE.value) == backlog + fresh, summary
            done = {s.id: _created_at(rt, s.id) for batch in sessions.values() for s in batch}
    finally:
        server.stop()
    last_b = max(done[s.id] for s in sessions[b.id])
    before = sum(1 for s in sessions[a.id] if done[s.id] < last_b)
    return before, backlog


def _created_at(rt: Runtime, session_id: UUID) -> datetime:
    """When the session's SESSION_CREATION completed (for the order of completions)."""
    for event in rt.app.session_events(session_id):
        if isinstance(event, Session.StageCompleted) and event.stage is CREATE:
            return event.timestamp
    raise AssertionError(f"{session_id} was not created")


@pytest.mark.parametrize("fair", [True, False], ids=["company", "fifo"])
def test_the_fresh_company_is_done_before_the_backlog(database_url: str, fair: bool) -> None:
    before, backlog = _run(database_url, fair, backlog=240, fresh=4)
    if fair:
        assert before <= backlog // 4, f"{before} of A's {backlog} were done before B's"
    else:  # the reference: oldest first, B's sessions wait behind much of A's backlog (how
        # much depends on how the level ticks fall on a loaded machine: 103 of 240 seen)
        assert before > backlog // 3, f"fifo: only {before} of A's done before B's"
