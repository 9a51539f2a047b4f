"""Claimed work waiting in a deep queue must not start when its lease would end before its
timeout: it could then outlive the lease and run beside the daemon that takes the stage over.
Such work is handed back (failed as lease_expired, retried at once), never started."""

from __future__ import annotations

import io
from pathlib import Path

from domain.company import Company
from domain.session import LEASE_EXPIRED, Session
from domain.stages import Stage, Status
from processors.clock import utc_now
from processors.daemon import Daemon, DaemonConfig, StageConfig
from processors.fetch import FetchSettings, TranscriptFetchProcessor
from processors.netguard import AllowList
from processors.reporting import JsonLogReporter
from tests.factories import row
from tests.harness import runtime
from tests.servers import Route, RouteServer

SESSIONS = 6
WORK = 0.4  # seconds the transcript server takes per request
LEASE = 2.5
TIMEOUT = 1.0


def test_queued_work_whose_lease_runs_short_is_handed_back_not_started(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'livedash.db'}"
    route = Route(body=b"User: hi\nAssistant: hello\n", delay=WORK)
    with RouteServer({"/t.txt": route}) as srv, runtime(url) as rt:
        company = rt.app.register_company(
            Company.register("Acme", "https://csv.example/x.csv", utc_now())
        )
        sessions = [
            Session.import_row(
                company.id,
                row(external_id=f"s{i}", url=srv.url("/t.txt")),
                "x.csv",
                utc_now(),
            )
            for i in range(SESSIONS)
        ]
        rt.app.save_batch(sessions)
        rt.runner.catch_up()
        fetch = TranscriptFetchProcessor(
            FetchSettings(timeout=TIMEOUT * 0.9, allow=AllowList.parse(["127.0.0.1"])), {}
        )
        config = DaemonConfig(
            worker_id="t",
            stages=(Stage.TRANSCRIPT_FETCH,),
            stage_configs={
                # One slot, everything else queued: the sixth claim waits 2 s.
                Stage.TRANSCRIPT_FETCH: StageConfig(
                    concurrency=1, timeout=TIMEOUT, lease_seconds=LEASE, queue_depth=10
                )
            },
            until_idle=True,
            idle_horizon=0,
            poll_interval=0.05,
        )
        daemon = Daemon(
            rt.app,
            rt.runner,
            {Stage.TRANSCRIPT_FETCH: fetch},
            config,
            utc_now,
            JsonLogReporter(io.StringIO()),
        )
        summary = daemon.run()
        fetch.close()
        histories = {s.id: rt.app.session_events(s.id) for s in sessions}
        final = {s.id: rt.app.get_session(s.id) for s in sessions}

    handed_back = [
        e
        for events in histories.values()
        for e in events
        if isinstance(e, Session.StageFailed) and e.error_type == LEASE_EXPIRED
    ]
    assert handed_back, "with a 2.5 s lease, the claims queued 1.6 s and more should be handed back"
    assert all("not started" in e.error and e.retry_at == e.timestamp for e in handed_back)
    # Handed-back work never reached the server: one request per session, no more.
    assert srv.count("/t.txt") == SESSIONS
    assert summary.completed == {"TRANSCRIPT_FETCH": SESSIONS}
    for sid, events in histories.items():
        assert final[sid].stages[Stage.TRANSCRIPT_FETCH].status is Status.COMPLETED
        leases = {
            e.attempt: e.lease_expires_at for e in events if isinstance(e, Session.StageStarted)
        }
        for e in events:
            if isinstance(e, Session.StageCompleted):
                assert e.timestamp <= leases[e.attempt], "work finished after its lease"
