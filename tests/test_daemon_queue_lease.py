"""The fetch stage's work as the daemon holds it: claimed work waiting in a deep queue keeps its
lease alive by heartbeat (a short lease, a long queue, and no attempt lost), and finished work
must be freed by reference counting alone, because the daemon runs the garbage collector
rarely."""

from __future__ import annotations

import gc
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import select

from cli.runtime import Runtime
from domain.company import Company
from domain.session import Session
from domain.stages import Stage, Status
from processors.clock import utc_now
from processors.net.netguard import AllowList
from processors.runtime.config import DaemonConfig, StageConfig
from processors.runtime.daemon import Daemon
from processors.runtime.flight import InFlight
from processors.runtime.reporting import JsonLogReporter
from processors.runtime.summary import DaemonSummary
from processors.stages.fetch import FetchSettings, TranscriptFetchProcessor
from projections.schema import sessions
from tests.factories import row
from tests.harness import runtime
from tests.servers import Route, RouteServer


@contextmanager
def fetch_backlog(tmp_path: Path, sessions: int, delay: float) -> Iterator[tuple[Runtime, str]]:
    """A database with ``sessions`` imported rows whose transcripts a real HTTP server sends
    after ``delay`` seconds each."""
    route = Route(body=b"User: hi\nAssistant: hello\n", delay=delay)
    with (
        RouteServer({"/t.txt": route}) as srv,
        runtime(f"sqlite:///{tmp_path / 'livedash.db'}") as rt,
    ):
        company = rt.app.register_company(
            Company.register("Acme", "https://csv.example/x.csv", utc_now())
        )
        rows = [row(external_id=f"s{i}", url=srv.url("/t.txt")) for i in range(sessions)]
        rt.app.save_batch([Session.import_row(company.id, r, "x.csv", utc_now()) for r in rows])
        rt.runner.catch_up()
        yield rt, srv.url("/t.txt")
        assert srv.count("/t.txt") == sessions  # one request per session, never more


def run_fetch_daemon(rt: Runtime, stage: StageConfig) -> DaemonSummary:
    fetch = TranscriptFetchProcessor(
        FetchSettings(timeout=stage.timeout * 0.9, allow=AllowList.parse(["127.0.0.1"])), {}.get
    )
    config = DaemonConfig(
        worker_id="t",
        stages=(Stage.TRANSCRIPT_FETCH,),
        stage_configs={Stage.TRANSCRIPT_FETCH: stage},
        until_idle=True,
        idle_horizon=0,
        poll_interval=0.05,
    )
    reporter = JsonLogReporter(io.StringIO())
    try:
        return Daemon(rt.app, rt.runner, {fetch.stage: fetch}, config, utc_now, reporter).run()
    finally:
        fetch.close()


def session_ids(rt: Runtime) -> list[UUID]:
    with rt.engine.connect() as conn:
        return [r[0] for r in conn.execute(select(sessions.c.session_id))]


def history(rt: Runtime) -> dict[UUID, list[Any]]:
    return {sid: list(rt.app.session_events(sid)) for sid in session_ids(rt)}


def test_queued_and_running_work_keeps_its_lease_by_heartbeat(tmp_path: Path) -> None:
    # One slot, everything else queued, 0.4 s a request: ten sessions wait up to 4 s in the
    # queue, longer than the 2.5 s lease. Before heartbeats the later ones were failed as
    # lease_expired without ever running (and that cost an attempt).
    one_slot = StageConfig(concurrency=1, timeout=1.0, lease_seconds=2.5, queue_depth=10)
    with fetch_backlog(tmp_path, sessions=10, delay=0.4) as (rt, _):
        summary = run_fetch_daemon(rt, one_slot)
        events = history(rt)
        final = rt.app.get_sessions(session_ids(rt))

    assert summary.completed == {"TRANSCRIPT_FETCH": 10}
    every = [e for per_session in events.values() for e in per_session]
    assert not [e for e in every if isinstance(e, Session.StageFailed)], "no attempt was lost"
    assert not [e for e in every if isinstance(e, Session.StageReleased)]
    assert [e for e in every if isinstance(e, Session.LeaseExtended)], "no heartbeat"
    for s in final:
        state = s.stages[Stage.TRANSCRIPT_FETCH]
        assert (state.status, state.attempt, state.attempts_run) == (Status.COMPLETED, 1, 1)
    for per_session in events.values():
        lease = None
        for e in per_session:
            if isinstance(e, Session.StageStarted | Session.LeaseExtended):
                lease = e.lease_expires_at
            if isinstance(e, Session.StageCompleted):
                assert lease is not None and e.timestamp <= lease, "finished after its lease"


def test_finished_work_is_freed_without_the_garbage_collector(tmp_path: Path) -> None:
    with fetch_backlog(tmp_path, sessions=30, delay=0.0) as (rt, _):
        gc.disable()  # what is left now is only freed by reference counting
        try:
            summary = run_fetch_daemon(rt, StageConfig(concurrency=4, timeout=5.0))
            lingering = sum(isinstance(o, InFlight) for o in gc.get_objects())
        finally:
            gc.enable()
    assert summary.completed == {"TRANSCRIPT_FETCH": 30}
    assert lingering == 0, (
        f"{lingering} finished flights (with their sessions) wait for a collection"
    )
