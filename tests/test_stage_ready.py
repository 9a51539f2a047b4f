"""`stage_ready`: the status projection's list of stages that wait only for a worker, which
`due_work` reads instead of scanning every PENDING row (see projections/ready.py)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

from sqlalchemy import text

from cli.runtime import Runtime
from domain.session import Session
from domain.stages import Stage
from projections.store import create_schema
from projections.work import due_work
from tests.factories import Clock
from tests.harness import folded_ready, imported, projected_ready, ready_by_scan, runtime


def _sessions_in_every_state(rt: Runtime, clock: Clock) -> tuple[UUID, list[Session]]:
    company = uuid4()
    sessions = imported(rt, company, 9, "r", clock)
    for i, s in enumerate(sessions):
        clock.advance(1)
        now = clock()
        if i % 3 == 0:
            continue  # fetch still PENDING: creation not ready
        attempt = s.start_stage(Stage.TRANSCRIPT_FETCH, "w", now + timedelta(seconds=60), now)
        if i % 3 == 1:
            s.complete_stage(Stage.TRANSCRIPT_FETCH, attempt, now, {})  # creation ready
        else:
            s.fail_stage(Stage.TRANSCRIPT_FETCH, attempt, "http_404", "gone", False, None, now)
    rt.app.save_batch(sessions)
    rt.runner.catch_up()
    return company, sessions


def test_due_work_reads_the_ready_stages_oldest_first(database_url: str) -> None:
    clock = Clock()
    with runtime(database_url) as rt:
        company, sessions = _sessions_in_every_state(rt, clock)
        ready = [s for i, s in enumerate(sessions) if i % 3 == 1]
        with rt.engine.connect() as conn:
            due = due_work(conn, Stage.SESSION_CREATION, clock(), [company], 100)
            assert due == [s.id for s in ready]  # imported in this order: oldest first
            assert due_work(conn, Stage.SESSION_CREATION, clock(), [uuid4()], 100) == []
            assert due_work(conn, Stage.SESSION_CREATION, clock(), [company], 1) == [ready[0].id]

        # Starting one takes it off the list; completing creation makes AI_ANALYSIS ready.
        s = ready[0]
        now = clock()
        attempt = s.start_stage(Stage.SESSION_CREATION, "w", now + timedelta(seconds=60), now)
        rt.app.save_batch([s])
        rt.runner.catch_up()
        with rt.engine.connect() as conn:
            assert s.id not in due_work(conn, Stage.SESSION_CREATION, now, [company], 100)
        s.complete_stage(Stage.SESSION_CREATION, attempt, now, {})
        rt.app.save_batch([s])
        rt.runner.catch_up()
        with rt.engine.connect() as conn:
            assert due_work(conn, Stage.AI_ANALYSIS, now, [company], 100) == [s.id]
        ids = [x.id for x in sessions]
        assert projected_ready(rt, ids) == folded_ready(sessions)


def test_a_database_from_before_stage_ready_is_filled_from_the_status_table(
    database_url: str,
) -> None:
    clock = Clock()
    with runtime(database_url) as rt:
        _, sessions = _sessions_in_every_state(rt, clock)
        expected = folded_ready(sessions)
        assert expected and set(expected) == ready_by_scan(rt)
        with rt.engine.begin() as conn:
            conn.execute(text("DROP TABLE stage_ready"))
        create_schema(rt.engine)  # what `livedash init` and every open with create do
        assert projected_ready(rt, [s.id for s in sessions]) == expected
        create_schema(rt.engine)  # and again: nothing doubled, nothing lost
        assert projected_ready(rt, [s.id for s in sessions]) == expected


def test_expired_leases_come_before_retries_and_fresh_work(database_url: str) -> None:
    """A dead daemon's attempts are taken first, so a fleet's takeover does not wait behind a
    backlog of fresh work (measured: 15-28 s after a SIGKILL when PENDING came first)."""
    clock = Clock()
    with runtime(database_url) as rt:
        company, sessions = _sessions_in_every_state(rt, clock)
        ready = [s for i, s in enumerate(sessions) if i % 3 == 1]
        late, failed = ready[-1], ready[-2]
        now = clock()
        dead = late.start_stage(Stage.SESSION_CREATION, "dead", now + timedelta(seconds=5), now)
        assert dead
        attempt = failed.start_stage(Stage.SESSION_CREATION, "w", now + timedelta(seconds=60), now)
        failed.fail_stage(
            Stage.SESSION_CREATION, attempt, "boom", "x", True, now + timedelta(seconds=1), now
        )
        rt.app.save_batch([late, failed])
        rt.runner.catch_up()
        later = now + timedelta(seconds=10)
        with rt.engine.connect() as conn:
            due = due_work(conn, Stage.SESSION_CREATION, later, [company], 100)
            assert due[:2] == [late.id, failed.id]
            assert sorted(due[2:]) == sorted(s.id for s in ready[:-2])
            assert due_work(conn, Stage.SESSION_CREATION, later, [company], 1) == [late.id]
            # Before the lease expires and the retry is due, only fresh work is offered.
            assert late.id not in due_work(conn, Stage.SESSION_CREATION, now, [company], 100)
