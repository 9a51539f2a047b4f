"""The fetch stage's work as the daemon holds it: claimed work waiting in a deep queue must not
start when its lease would end before its timeout (it could then outlive the lease and run
beside the daemon that takes the stage over), and finished work must be freed by reference
counting alone, because the daemon runs the garbage collector rarely."""

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
from domain.session import LEASE_EXPIRED, Session
from domain.stages import Stage, Status
from processors.clock import utc_now
from processors.daemon import Daemon, DaemonConfig, DaemonSummary, InFlight, StageConfig
from processors.fetch import FetchSettings, TranscriptFetchProcessor
from processors.netguard import AllowList
from processors.reporting import JsonLogReporter
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
        FetchSettings(timeout=stage.timeout * 0.9, allow=AllowList.parse(["127.0.0.1"])), {}
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


def test_queued_work_whose_lease_runs_short_is_handed_back_not_started(tmp_path: Path) -> None:
    # One slot, everything else queued, 0.4 s a request: the sixth claim waits 2 s, and with
    # a 2.5 s lease and a 1 s timeout anything queued past 1.5 s must not start.
    one_slot = StageConfig(concurrency=1, timeout=1.0, lease_seconds=2.5, queue_depth=10)
    with fetch_backlog(tmp_path, sessions=6, delay=0.4) as (rt, _):
        summary = run_fetch_daemon(rt, one_slot)
        events = history(rt)
        final = rt.app.get_sessions(session_ids(rt))

    handed_back = [
        e
        for per_session in events.values()
        for e in per_session
        if isinstance(e, Session.StageFailed) and e.error_type == LEASE_EXPIRED
    ]
    assert handed_back, "claims queued past the lease's safe start were started anyway"
    assert all("not started" in e.error and e.retry_at == e.timestamp for e in handed_back)
    assert summary.completed == {"TRANSCRIPT_FETCH": 6}
    assert all(s.stages[Stage.TRANSCRIPT_FETCH].status is Status.COMPLETED for s in final)
    for per_session in events.values():
        leases = {
            e.attempt: e.lease_expires_at
            for e in per_session
            if isinstance(e, Session.StageStarted)
        }
        for e in per_session:
            if isinstance(e, Session.StageCompleted):
                assert e.timestamp <= leases[e.attempt], "work finished after its lease"


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
