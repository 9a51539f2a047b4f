"""Property: the overview at any time T (`status --at`) equals the full fold of the log up to
T — every session's events folded by the aggregate itself up to its first event stamped after
T, as `history --at` does — on SQLite and PostgreSQL, whatever legal commands ran, with
stamps that go back now and then, and T anywhere (between seconds, on a stamp, before all)."""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.runtime import Runtime, events_table
from domain.errors import DomainError
from domain.session import Session
from domain.stages import STAGE_ORDER, WORKER_STAGES
from projections.overview_at import LogSource, prefix, snapshot
from projections.status import buckets
from tests.conftest import fresh_pg_database
from tests.factories import Clock, row
from tests.harness import runtime
from tests.test_projection_fold import OPS, apply_op


def log_source(rt: Runtime) -> LogSource:
    return LogSource(events_table(rt.config), rt.config.schema or None, rt.app.mapper)


def folded_at(rt: Runtime, at: datetime, company_id: UUID | None = None) -> Counter[Any]:
    """The reference: the whole log decoded, each session folded by the aggregate."""
    by_session: dict[UUID, list[Any]] = defaultdict(list)
    for n in rt.app.recorder.select_notifications(start=0, limit=10**9, inclusive_of_start=False):
        event = rt.app.mapper.to_domain_event(n)
        if isinstance(event, Session.Event):
            by_session[event.originator_id].append(event)
    counts: Counter[Any] = Counter()
    for events in by_session.values():
        session = None
        for event in events:
            if event.timestamp > at:
                break
            session = event.mutate(session)
        if session is None or (company_id is not None and session.company_id != company_id):
            continue
        for stage in STAGE_ORDER:
            for b in buckets(session.stages[stage]):
                counts[(stage.value, b)] += 1
    return counts


def answered_at(rt: Runtime, at: datetime, company_id: UUID | None = None) -> Counter[Any]:
    with snapshot(rt.engine) as conn:
        found = prefix(conn, log_source(rt), at, company_id).counts
    return Counter({k: n for k, n in found.items() if n})


steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=5),
        st.sampled_from((*OPS, "back")),
        st.sampled_from(WORKER_STAGES),
        st.integers(min_value=1, max_value=200),
        st.sampled_from((0.0, 0.25, 0.5, 1.0, 61.0, 3600.0)),
    ),
    min_size=1,
    max_size=40,
)


def run_steps(rt: Runtime, ops: list[Any]) -> tuple[list[UUID], list[datetime]]:
    clock = Clock(Clock().now + timedelta(days=len(ops) % 3, microseconds=len(ops)))
    companies = [uuid4(), uuid4()]
    sessions = [
        Session.import_row(companies[i % 2], row(external_id=f"s{i}"), "t.csv", clock())
        for i in range(6)
    ]
    rt.app.save_batch(sessions)
    for k, (index, op, stage, n, gap) in enumerate(ops):
        clock.advance(gap)
        if op == "back":  # another host's clock, a little behind
            clock.advance(-(n % 5) - 0.5)
            continue
        with contextlib.suppress(DomainError):
            apply_op(sessions[index], op, stage, n, clock)
        if k % 5 == 0:
            rt.app.save_batch(sessions)
    rt.app.save_batch(sessions)
    rt.runner.catch_up()
    stamps = sorted(
        {e.timestamp for s in sessions for e in rt.app.session_events(s.id)}  # type: ignore[attr-defined]
    )
    return companies, stamps


def moments(stamps: list[datetime]) -> Iterator[datetime]:
    """Before everything, on and around stamps, between seconds, after everything."""
    yield stamps[0] - timedelta(microseconds=1)
    for stamp in stamps[:: max(1, len(stamps) // 4)]:
        yield stamp
        yield stamp - timedelta(microseconds=1)
        yield stamp.replace(microsecond=0) + timedelta(seconds=1)
    yield stamps[-1] + timedelta(days=2)


def check(rt: Runtime, ops: list[Any]) -> None:
    companies, stamps = run_steps(rt, ops)
    for at in moments(stamps):
        assert answered_at(rt, at) == folded_at(rt, at), at
        assert answered_at(rt, at, companies[1]) == folded_at(rt, at, companies[1]), at


SETTINGS = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def sqlite_rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    path = tmp_path_factory.mktemp("at") / "at.db"
    with runtime(f"sqlite:///{path}") as rt:
        rt.runner.page_size = 7  # page boundaries fall everywhere
        yield rt


@pytest.fixture(scope="module")
def pg_rt() -> Iterator[Runtime]:
    with fresh_pg_database() as url, runtime(url) as rt:
        rt.runner.page_size = 7
        yield rt


@SETTINGS
@given(ops=steps)
def test_overview_at_equals_fold_sqlite(sqlite_rt: Runtime, ops: list[Any]) -> None:
    check(sqlite_rt, ops)


@pytest.mark.postgres
@SETTINGS
@given(ops=steps)
def test_overview_at_equals_fold_postgres(pg_rt: Runtime, ops: list[Any]) -> None:
    check(pg_rt, ops)


@pytest.mark.parametrize(
    "backend", ["sqlite_rt", pytest.param("pg_rt", marks=pytest.mark.postgres)]
)
def test_a_stamp_behind_counts_from_its_sessions_latest_stamp(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """A completion stamped before its start (the finishing host's clock is behind) takes
    effect when the start does: before that, `history --at` stops at the start."""
    rt: Runtime = request.getfixturevalue(backend)
    clock = Clock(Clock().now + timedelta(days=40))
    t0 = clock()
    s = Session.import_row(uuid4(), row(external_id="behind"), "t.csv", t0)
    stage = WORKER_STAGES[0]
    attempt = s.start_stage(stage, "w1", t0 + timedelta(minutes=5), t0 + timedelta(seconds=10))
    s.complete_stage(stage, attempt, t0 + timedelta(seconds=5), {})
    rt.app.save_batch([s])
    rt.runner.catch_up()
    for seconds in (0, 5, 7.5, 10, 11):
        at = t0 + timedelta(seconds=seconds)
        assert answered_at(rt, at, s.company_id) == folded_at(rt, at, s.company_id), seconds
    assert answered_at(rt, t0 + timedelta(seconds=7), s.company_id)[(stage.value, "PENDING")] == 1
