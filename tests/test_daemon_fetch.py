"""End to end through the real daemon: one import whose transcript URLs point at a misbehaving
server. Every session must end in a clear final state after bounded retries, and the hanging,
huge and looping transcripts must not keep the daemon from finishing the good sessions."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli.bootstrap import build_processors
from cli.settings import Settings
from domain.company import Company
from domain.session import Session, session_id_for
from domain.stages import WORKER_STAGES, Stage, Status
from processors.clock import utc_now
from processors.ingest import importer as csv_import
from processors.runtime.config import DaemonConfig, StageConfig
from processors.runtime.daemon import Daemon
from processors.runtime.reporting import JsonLogReporter
from processors.runtime.retry import RetryPolicy
from processors.runtime.summary import DaemonSummary
from tests.harness import runtime
from tests.servers import RouteServer, hang, huge, redirect, status, text, throttled

FETCH = Stage.TRANSCRIPT_FETCH
POLICY = RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=0.5, jitter=0)
HARD_CAP = 30.0  # seconds; the run is expected to take a few
TRANSCRIPT = (
    "[01.10.2026 10:00:05] User: Hallo, wat zijn jullie openingstijden?\n"
    "[01.10.2026 10:00:09] Assistant: We zijn open van 9 tot 5.\n"
)


def csv_line(external_id: str, url: str) -> str:
    return (
        f"{external_id},01.10.2026 10:00:00,01.10.2026 10:05:00,192.0.2.1,NL,dutch,2,happy,"
        f"no,no,{url},2.5,100,0.0010,Greeting,hallo\n"
    )


def write_csv(path: Path, rows: dict[str, str]) -> Path:
    path.write_text("".join(csv_line(ext, url) for ext, url in rows.items()), encoding="utf-8")
    return path


@dataclass
class Run:
    summary: DaemonSummary
    log: list[dict[str, object]]
    sessions: dict[str, Session]
    remote: dict[str, Session]
    events: dict[str, list[Any]]
    server: RouteServer


def stage_configs() -> dict[Stage, StageConfig]:
    configs = {
        s: StageConfig(concurrency=4, timeout=5, lease_seconds=10, policy=POLICY)
        for s in WORKER_STAGES
    }
    configs[FETCH] = StageConfig(concurrency=8, timeout=1, lease_seconds=5, policy=POLICY)
    return configs


def run_until_idle(rt, processors) -> tuple[DaemonSummary, list[dict[str, object]]]:
    stream = io.StringIO()
    config = DaemonConfig(
        worker_id="test-worker",
        stage_configs=stage_configs(),
        until_idle=True,
        idle_horizon=30,
        poll_interval=0.1,
        level_interval=0.2,
        grace_seconds=1,
    )
    daemon = Daemon(rt.app, rt.runner, processors, config, utc_now, JsonLogReporter(stream=stream))
    watchdog = threading.Timer(HARD_CAP, daemon.request_stop)
    watchdog.start()
    try:
        summary = daemon.run()
    finally:
        watchdog.cancel()
    log = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert summary.stopped_by == "idle", f"the daemon ran into the {HARD_CAP}s cap: {log[-3:]}"
    return summary, log


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("daemon_fetch")
    (tmp / "chats").mkdir()
    (tmp / "chats" / "rel.txt").write_text(TRANSCRIPT, encoding="utf-8")
    url = f"sqlite:///{tmp / 'livedash.db'}"
    settings = Settings(database_url=url, fetch_allow_hosts=("127.0.0.1",))
    processors = build_processors(settings, {}.get)
    server = RouteServer(
        {
            "/ok.txt": text(TRANSCRIPT),
            "/always-500.txt": status(500),
            "/throttled.txt": [throttled("1"), text(TRANSCRIPT)],
            "/hang.txt": hang(),
            "/huge.txt": huge(50 * 1024 * 1024),
            "/loop-a": redirect("/loop-b"),
            "/loop-b": redirect("/loop-a"),
            "/remote-ok.txt": text(TRANSCRIPT),
        }
    ).start()
    try:
        local_rows = {
            "ok": server.url("/ok.txt"),
            "relative": "chats/rel.txt",
            "always-500": server.url("/always-500.txt"),
            "throttled": server.url("/throttled.txt"),
            "hang": server.url("/hang.txt"),
            "huge": server.url("/huge.txt"),
            "loop": server.url("/loop-a"),
            "missing": server.url("/missing.txt"),
            "no-url": "",
        }
        remote_rows = {
            "remote-ok": server.url("/remote-ok.txt"),
            "remote-meta": "http://169.254.169.254/latest/meta-data/",
            "remote-loopback": f"http://127.0.0.2:{server.port}/remote-ok.txt",
        }
        local_csv = write_csv(tmp / "sessions.csv", local_rows)
        remote_csv = write_csv(tmp / "remote.csv", remote_rows)
        with runtime(url) as rt:
            local = rt.app.register_company(Company.register("Local Co", str(local_csv), utc_now()))
            remote = rt.app.register_company(
                Company.register("Remote Co", "https://csv.example/export.csv", utc_now())
            )
            for company, path in ((local, local_csv), (remote, remote_csv)):
                done = csv_import.run_import(
                    rt.app, rt.runner, company, csv_import.file_reader(path), utc_now
                )
                assert (done.outcome, done.rejected) == ("ok", 0), done

            summary, log = run_until_idle(rt, processors)

            def load(company: Company, ids: list[str]) -> dict[str, Session]:
                return {e: rt.app.get_session(session_id_for(company.id, e)) for e in ids}

            sessions = load(local, list(local_rows))
            remote_sessions = load(remote, list(remote_rows))
            events = {
                ext: rt.app.session_events(s.id) for ext, s in (sessions | remote_sessions).items()
            }
        yield Run(summary, log, sessions, remote_sessions, events, server)
    finally:
        server.stop()  # releases the fetch threads the daemon abandoned on /hang.txt
        for p in processors.values():
            close = getattr(p, "close", None)
            if close:
                close()


def fetch_state(session: Session):
    return session.stages[FETCH]


def test_every_session_ends_in_a_final_state(run: Run) -> None:
    for ext, s in (run.sessions | run.remote).items():
        state = fetch_state(s)
        assert state.status in (Status.COMPLETED, Status.SKIPPED, Status.FAILED), ext
        if state.status is Status.FAILED:
            assert state.is_dead, f"{ext} still scheduled: {state.retry_at}"
            for later in WORKER_STAGES[1:]:
                assert s.stages[later].status is Status.PENDING, (ext, later)
    assert run.summary.next_retry_at is None
    assert run.log[-1]["event"] == "stopped" and run.log[-1]["reason"] == "idle"


@pytest.mark.parametrize("ext", ["ok", "relative", "throttled"])
def test_good_sessions_go_all_the_way(run: Run, ext: str) -> None:
    s = run.sessions[ext]
    assert [s.stages[st].status for st in WORKER_STAGES[:-1]] == [Status.COMPLETED] * 3, ext
    assert s.stages[Stage.QUESTION_EXTRACTION].status in (Status.COMPLETED, Status.SKIPPED)
    data = TRANSCRIPT.encode("utf-8")
    assert s.transcript is not None
    assert s.transcript.text == TRANSCRIPT
    assert (s.transcript.sha256, s.transcript.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert fetch_state(s).metadata["sha256"] == s.transcript.sha256
    assert [m.role for m in s.messages] == ["user", "assistant"]


def test_always_500_is_given_up_after_exactly_max_attempts(run: Run) -> None:
    state = fetch_state(run.sessions["always-500"])
    # Retries exhausted: stored and reported as not retryable (no retry time, no "will retry").
    assert (state.status, state.error_type, state.retryable) == (Status.FAILED, "http_500", False)
    assert "retries exhausted" in (state.error_message or "")
    assert state.is_dead and state.attempt == POLICY.max_attempts
    assert state.attempts_run == POLICY.max_attempts
    assert run.server.count("/always-500.txt") == POLICY.max_attempts
    failures = [e for e in run.log if e["event"] == "failed" and e["external_id"] == "always-500"]
    assert len(failures) == POLICY.max_attempts
    assert all("http_500" in str(e["detail"]) for e in failures)


def test_429_is_retried_after_its_retry_after_and_then_completes(run: Run) -> None:
    state = fetch_state(run.sessions["throttled"])
    assert (state.status, state.attempt) == (Status.COMPLETED, 2)
    assert run.server.count("/throttled.txt") == 2
    events = run.events["throttled"]
    failed = [e for e in events if isinstance(e, Session.StageFailed) and e.stage is FETCH]
    second = [e for e in events if isinstance(e, Session.StageStarted) and e.attempt == 2]
    assert len(failed) == 1 and failed[0].error_type == "http_429" and len(second) == 1
    assert failed[0].retry_at is not None
    # Our own backoff would be 0.1 s; the server's Retry-After: 1 wins.
    assert (failed[0].retry_at - failed[0].timestamp).total_seconds() >= 1
    assert second[0].timestamp >= failed[0].retry_at


def test_hanging_server_times_out_each_attempt_and_is_given_up(run: Run) -> None:
    state = fetch_state(run.sessions["hang"])
    assert (state.status, state.error_type) == (Status.FAILED, "timeout")
    assert state.is_dead and state.attempt == POLICY.max_attempts
    assert run.server.count("/hang.txt") == POLICY.max_attempts


def test_other_sessions_were_served_while_the_hanging_one_waited(run: Run) -> None:
    first_timeout = min(
        e.timestamp
        for e in run.events["hang"]
        if isinstance(e, Session.StageFailed) and e.stage is FETCH
    )
    for ext in ("ok", "relative"):
        done = fetch_state(run.sessions[ext]).completed_at
        assert done is not None and done < first_timeout, ext


@pytest.mark.parametrize(
    ("ext", "error_type", "paths", "requests"),
    [
        ("huge", "too_large", ("/huge.txt",), 1),
        ("loop", "too_many_redirects", ("/loop-a", "/loop-b"), 6),
        ("missing", "http_404", ("/missing.txt",), 1),
    ],
)
def test_permanent_failures_are_not_retried(
    run: Run, ext: str, error_type: str, paths: tuple[str, ...], requests: int
) -> None:
    state = fetch_state(run.sessions[ext])
    assert (state.status, state.error_type, state.retryable) == (Status.FAILED, error_type, False)
    assert state.is_dead and state.attempt == 1
    assert sum(run.server.count(p) for p in paths) == requests


def test_row_without_url_skips_the_fetch_and_still_finishes(run: Run) -> None:
    s = run.sessions["no-url"]
    state = fetch_state(s)
    assert state.status is Status.SKIPPED
    assert state.note == "no transcript URL in the CSV row"
    assert s.transcript is None
    assert s.stages[Stage.SESSION_CREATION].status is Status.COMPLETED
    assert s.stages[Stage.AI_ANALYSIS].status is Status.SKIPPED
    assert s.stages[Stage.QUESTION_EXTRACTION].status is Status.SKIPPED


def test_remote_csv_urls_pass_the_ssrf_guard_only_when_allowed(run: Run) -> None:
    ok = run.remote["remote-ok"]
    assert fetch_state(ok).status is Status.COMPLETED  # 127.0.0.1 is in fetch_allow_hosts
    assert ok.stages[Stage.AI_ANALYSIS].status is Status.COMPLETED
    for ext in ("remote-meta", "remote-loopback"):
        state = fetch_state(run.remote[ext])
        assert (state.status, state.error_type, state.retryable) == (
            Status.FAILED,
            "blocked_address",
            False,
        ), ext
    assert run.server.count("/remote-ok.txt") == 1  # the blocked 127.0.0.2 URL never connected


def test_summary_counts_match_the_sessions(run: Run) -> None:
    assert run.summary.completed[FETCH.value] == 4  # ok, relative, throttled, remote-ok
    assert run.summary.skipped[FETCH.value] == 1
    assert run.summary.lost_races == 0
