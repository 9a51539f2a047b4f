"""Property: after catching up, the status projection equals the fold of the events, on SQLite
and on PostgreSQL, whatever legal command sequence produced them, and a rebuild is identical."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.runtime import Runtime
from domain.errors import DomainError
from domain.session import Session
from domain.stages import WORKER_STAGES
from projections.status import StatusProjection, known
from tests.conftest import fresh_pg_database
from tests.factories import Clock, row
from tests.harness import (
    assert_projected_is_fold,
    folded_overview,
    folded_ready,
    folded_rows,
    imported,
    overview_counts,
    projected_ready,
    projected_rows,
    ready_by_scan,
    runtime,
)

OPS = (
    "start",
    "complete",
    "fail_retry",
    "fail_dead",
    "skip",
    "reset",
    "reset_force",
    "row_change",
    "wait",
)

ops_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=7),
        st.sampled_from(OPS),
        st.sampled_from(WORKER_STAGES),
        st.integers(min_value=1, max_value=200),
    ),
    min_size=1,
    max_size=80,
)


def apply_op(s: Session, op: str, stage, n: int, clock: Clock) -> None:
    now = clock()
    st_ = s.stages[stage]
    if op == "start":
        s.start_stage(stage, f"w{n % 3}", now + timedelta(seconds=n % 90 + 1), now)
    elif op == "complete":
        s.complete_stage(stage, st_.attempt, now, {"n": n})
    elif op == "fail_retry":
        s.fail_stage(stage, st_.attempt, "http_503", f"e{n}", True, now + timedelta(seconds=n), now)
    elif op == "fail_dead":
        s.fail_stage(stage, st_.attempt, "http_404", f"e{n}", False, None, now)
    elif op == "skip":
        s.skip_stage(stage, f"reason {n}", now)
    elif op == "reset":
        s.reset_stage(stage, f"retry {n}", "tester", now)
    elif op == "reset_force":
        s.reset_stage(stage, f"reprocess {n}", "tester", now, force=True)
    elif op == "row_change":
        s.change_row(row(external_id=s.external_id, messages_sent=n), "again.csv", now)
    elif op == "wait":
        clock.advance(n)


def check_fold(rt: Runtime, ops: list) -> None:
    company = uuid4()
    clock = Clock()
    sessions = [
        Session.import_row(company, row(external_id=f"s{i}"), "t.csv", clock()) for i in range(8)
    ]
    rt.app.save_batch(sessions)
    for k, (index, op, stage, n) in enumerate(ops):
        clock.advance(1)
        with contextlib.suppress(DomainError):
            apply_op(sessions[index], op, stage, n, clock)
        if k % 7 == 0:
            rt.app.save_batch(sessions)
    rt.app.save_batch(sessions)
    rt.runner.catch_up()
    ids = [s.id for s in sessions]
    assert projected_rows(rt, ids) == folded_rows(sessions)
    assert projected_ready(rt, ids) == folded_ready(sessions)
    assert {k for k in ready_by_scan(rt) if k[0] in set(ids)} == set(folded_ready(sessions))
    assert overview_counts(rt, company) == folded_overview(sessions)
    reloaded = rt.app.get_sessions(ids)
    assert folded_rows(reloaded) == folded_rows(sessions)


def backend_url(stack: contextlib.ExitStack, backend: str, tmp_path) -> str:
    """A fresh SQLite file or a fresh PostgreSQL database, dropped with ``stack``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'fold.db'}"
    return str(stack.enter_context(fresh_pg_database()))


def backend_runtime(stack: contextlib.ExitStack, backend: str, tmp_path) -> Runtime:
    """A runtime on a fresh SQLite file or a fresh PostgreSQL database, closed with ``stack``."""
    return stack.enter_context(runtime(backend_url(stack, backend, tmp_path)))


SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def sqlite_rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    path = tmp_path_factory.mktemp("fold") / "fold.db"
    with runtime(f"sqlite:///{path}") as rt:
        rt.runner.page_size = 7  # many small pages: page boundaries fall everywhere
        yield rt


@pytest.fixture(scope="module")
def pg_rt() -> Iterator[Runtime]:
    with fresh_pg_database() as url, runtime(url) as rt:
        rt.runner.page_size = 7
        yield rt


@SETTINGS
@given(ops=ops_strategy)
def test_projection_equals_fold_sqlite(sqlite_rt: Runtime, ops: list) -> None:
    check_fold(sqlite_rt, ops)


@pytest.mark.postgres
@settings(SETTINGS, max_examples=25)
@given(ops=ops_strategy)
def test_projection_equals_fold_postgres(pg_rt: Runtime, ops: list) -> None:
    check_fold(pg_rt, ops)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_rebuild_yields_identical_tables(backend: str, tmp_path) -> None:
    from sqlalchemy import select

    from projections.schema import pipeline_overview, session_stage_status, sessions

    def run(url: str) -> None:
        with runtime(url) as rt:
            check_fold(rt, [(i % 8, op, WORKER_STAGES[i % 4], i) for i, op in enumerate(OPS * 6)])

            def snapshot() -> tuple:
                with rt.engine.connect() as conn:
                    return tuple(
                        sorted(map(tuple, conn.execute(select(t)).all()), key=repr)
                        for t in (session_stage_status, pipeline_overview, sessions)
                    )

            before = snapshot()
            assert before[0], "the test must have projected rows"
            rt.runner.rebuild("session_status")
            assert snapshot() == before

    if backend == "sqlite":
        run(f"sqlite:///{tmp_path / 'r.db'}")
    else:
        with fresh_pg_database() as url:
            run(url)


@pytest.mark.parametrize("runners", ["one", "separate"])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_catch_ups_equal_the_fold(backend: str, runners: str, tmp_path) -> None:
    """A daemon's loop, its scheduled import thread and `projections follow` may all call
    catch-up on one runner at once; daemons on several machines each have their own runner
    and move the same position. While events keep arriving: still the fold, no double count."""
    import threading

    with contextlib.ExitStack() as stack:
        url = backend_url(stack, backend, tmp_path)
        rt = stack.enter_context(runtime(url))
        rt.runner.page_size = 5
        projecting = [rt] * 3
        if runners == "separate":
            projecting = [stack.enter_context(runtime(url)) for _ in range(3)]
            for other in projecting:
                other.runner.page_size = 5
        company = uuid4()
        clock = Clock()
        sessions = [
            Session.import_row(company, row(external_id=f"c{i}"), "t.csv", clock())
            for i in range(12)
        ]
        rt.app.save_batch(sessions)
        done = threading.Event()
        errors: list[BaseException] = []

        def project(each: Runtime) -> None:
            try:
                while not done.is_set():
                    each.runner.catch_up()
            except BaseException as e:  # reported below, not lost in a thread
                errors.append(e)

        threads = [threading.Thread(target=project, args=(each,)) for each in projecting]
        for t in threads:
            t.start()
        try:
            # Round by round, every session starts then completes each stage in turn.
            for k in range(2 * len(WORKER_STAGES) * len(sessions)):
                s = sessions[k % len(sessions)]
                round_ = k // len(sessions)
                clock.advance(1)
                apply_op(s, ("start", "complete")[round_ % 2], WORKER_STAGES[round_ // 2], k, clock)
                rt.app.save_batch([s])
        finally:
            done.set()
            for t in threads:
                t.join(60)
        assert not any(t.is_alive() for t in threads), "a projecting thread did not stop"
        assert not errors, errors
        rt.runner.catch_up()
        ids = [s.id for s in sessions]
        assert projected_rows(rt, ids) == folded_rows(sessions)
        assert projected_ready(rt, ids) == folded_ready(sessions)
        overview = overview_counts(rt, company)
        assert overview == folded_overview(sessions)
        assert overview[(WORKER_STAGES[-1].value, "COMPLETED")] == len(sessions)
        applied = {lag.name: lag.events_applied for lag in rt.runner.lag()}
        assert applied["session_status"] == len(sessions) * (1 + 2 * len(WORKER_STAGES))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_own_events_projected_from_memory_equal_the_fold(backend: str, tmp_path) -> None:
    """The daemon projects what it has just stored from memory when nothing else was written
    in between, and reads the log otherwise; either way the tables are the fold."""
    with contextlib.ExitStack() as stack:
        rt = backend_runtime(stack, backend, tmp_path)
        company = uuid4()
        clock = Clock()
        ours = imported(rt, company, 8, "o", clock)
        foreign: list[Session] = []
        outcomes = []

        def other(k: int) -> Session:
            return Session.import_row(company, row(external_id=f"f{k}"), "t.csv", clock())

        ops = [(i % 8, op, WORKER_STAGES[i % 4], i) for i, op in enumerate(OPS * 6)]
        for k, (index, op, stage, n) in enumerate(ops):
            clock.advance(1)
            with contextlib.suppress(DomainError):
                apply_op(ours[index], op, stage, n, clock)
            if k % 4:
                continue
            if k % 3 == 0:  # another writer appends before our save: it must not be skipped
                foreign.append(other(k))
                rt.app.save_batch(foreign[-1:])
            stored = rt.app.save_batch(ours)
            if k % 3 == 1:  # another writer appends between our save and our projection
                foreign.append(other(k))
                rt.app.save_batch(foreign[-1:])
            outcomes.append(rt.runner.apply_recorded("session_status", stored.recordings))
            rt.runner.catch_up(["session_status"])  # as the daemon's next turn does
        rt.app.save_batch(ours)
        rt.runner.catch_up()
        assert_projected_is_fold(rt, company, ours + foreign)
    assert True in outcomes and False in outcomes, "both paths must have been taken"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_known_states_stand_in_for_reads_and_equal_the_fold(backend: str, tmp_path) -> None:
    """The daemon tells the status projection what the sessions it claims held when loaded;
    the projection uses that instead of reading their rows only when the page's first event
    of the session directly follows that version. Stale states are offered too, and must be
    ignored: the tables are the fold either way."""
    with contextlib.ExitStack() as stack:
        rt = backend_runtime(stack, backend, tmp_path)
        status = rt.runner.projections["session_status"]
        assert isinstance(status, StatusProjection)
        company = uuid4()
        clock = Clock()
        sessions = imported(rt, company, 6, "k", clock)
        first = {s.id: known(s) for s in sessions}  # version 1: stale once a session moved on
        ops = [(i % 6, op, WORKER_STAGES[i % 4], i) for i, op in enumerate(OPS * 5)]
        usable = stale = 0
        for k, (index, op, stage, n) in enumerate(ops):
            s = sessions[index]
            before = known(s)
            clock.advance(1)
            with contextlib.suppress(DomainError):
                apply_op(s, op, stage, n, clock)
            status.forget()  # nothing cached: each session comes from a known state or its rows
            offered = first[s.id] if k % 3 == 0 else before
            status.know([offered])
            if rt.app.save_batch([s]).saved:
                usable += offered.version == before.version
                stale += offered.version != before.version
            rt.runner.catch_up(["session_status"])
        assert_projected_is_fold(rt, company, sessions)
    # Every current state was used instead of a read, and every stale one was refused.
    assert stale > 0 and usable > 0
    assert status.known_used == usable
