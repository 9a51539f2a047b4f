"""AI_ANALYSIS with the OpenAI analyser through the real daemon and event store.

Sessions are imported, fetched and created as in production; their analysis goes through the
real `openai` client to the fake server, which misbehaves per session (invalid JSON, 429s, a
slow answer, a refusal). Checked at the level of the event log: every paid response the server
delivered is one `AIUsageRecorded` event (same request ids), no answer is bought twice across
retries, and every session ends COMPLETED or FAILED with the right reason.
"""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cli.bootstrap import build_processors
from cli.settings import Settings
from domain.company import Company
from domain.session import Session, session_id_for
from domain.stages import WORKER_STAGES, Stage, Status
from processors.ai.config import OpenAIAnalyserConfig
from processors.ai.openai_client import OpenAIAnalyser
from processors.clock import utc_now
from processors.ingest import importer as csv_import
from processors.runtime.config import DaemonConfig, StageConfig
from processors.runtime.daemon import Daemon
from processors.runtime.reporting import JsonLogReporter
from processors.runtime.retry import RetryPolicy
from processors.runtime.summary import DaemonSummary
from processors.stages.analysis import AnalysisProcessor
from tests.harness import runtime
from tests.openai_server import (
    ChatRequest,
    FakeOpenAI,
    Reply,
    invalid_json,
    ok,
    rate_limited,
    refusal,
    schema_invalid,
)
from tests.servers import RouteServer, text

AI = Stage.AI_ANALYSIS
POLICY = RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=1.0, jitter=0)
HARD_CAP = 40.0
CASES = ["ok", "repair", "throttled", "throttled-repair", "slow", "refuse", "always-bad"]


def transcript(case: str) -> str:
    return (
        f"[01.10.2026 10:00:05] User: Hallo ({case}), ik ben ziek. Wie moet ik bellen?\n"
        "[01.10.2026 10:00:09] Assistant: Meld je ziek bij je leidinggevende.\n"
    )


def csv_line(external_id: str, url: str) -> str:
    return (
        f"{external_id},01.10.2026 10:00:00,01.10.2026 10:05:00,192.0.2.1,NL,dutch,2,happy,"
        f"no,no,{url},2.5,100,0.0010,Greeting,hallo\n"
    )


class Script:
    """What the fake server does, per session (found by the case name in the transcript)."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def __call__(self, request: ChatRequest) -> Reply:
        user = request.text("user")
        case = next(c for c in sorted(CASES, key=len, reverse=True) if f"({c})" in user)
        n = self.seen[case]
        self.seen[case] += 1
        plan: dict[str, list[Reply]] = {
            "ok": [ok()],
            "repair": [invalid_json(), ok()],
            "throttled": [rate_limited("0.3"), ok()],
            # attempt 1: a paid invalid answer, then its repair is throttled; attempt 2 must
            # repair the recorded answer, not buy a new one
            "throttled-repair": [invalid_json(), rate_limited("0.3"), ok()],
            "slow": [ok(latency=5.0), ok()],
            "refuse": [refusal()],
            "always-bad": [schema_invalid()],
        }
        replies = plan[case]
        return replies[min(n, len(replies) - 1)]


@dataclass
class Run:
    summary: DaemonSummary
    sessions: dict[str, Session]
    usages: dict[str, list[Any]]
    server: FakeOpenAI
    script: Script


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("openai_daemon")
    url = f"sqlite:///{tmp / 'livedash.db'}"
    settings = Settings(database_url=url, fetch_allow_hosts=("127.0.0.1",))
    script = Script()
    chats = RouteServer({f"/{c}.txt": text(transcript(c)) for c in CASES}).start()
    server = FakeOpenAI(script, api_key="sk-daemon").start()
    analyser = OpenAIAnalyser(
        OpenAIAnalyserConfig(api_key="sk-daemon", base_url=server.base_url, timeout=2.5)
    )
    processors = build_processors(settings, {}.get)
    processors[AI] = AnalysisProcessor(analyser=analyser)
    try:
        csv = tmp / "sessions.csv"
        csv.write_text("".join(csv_line(c, chats.url(f"/{c}.txt")) for c in CASES))
        with runtime(url) as rt:
            company = rt.app.register_company(Company.register("AI Co", str(csv), utc_now()))
            done = csv_import.run_import(
                rt.app, rt.runner, company, csv_import.file_reader(csv), utc_now
            )
            assert (done.outcome, done.rejected) == ("ok", 0), done
            configs = {
                s: StageConfig(concurrency=4, timeout=5, lease_seconds=10, policy=POLICY)
                for s in WORKER_STAGES
            }
            stream = io.StringIO()
            daemon = Daemon(
                rt.app,
                rt.runner,
                processors,
                DaemonConfig(
                    worker_id="ai-test",
                    stage_configs=configs,
                    until_idle=True,
                    idle_horizon=30,
                    poll_interval=0.1,
                    level_interval=0.2,
                    grace_seconds=1,
                ),
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
            assert summary.stopped_by == "idle", log[-5:]
            sessions = {c: rt.app.get_session(session_id_for(company.id, c)) for c in CASES}
            usages = {
                c: [e for e in rt.app.session_events(s.id) if type(e).__name__ == "AIUsageRecorded"]
                for c, s in sessions.items()
            }
        server.wait_idle()
        yield Run(summary, sessions, usages, server, script)
    finally:
        analyser.close()
        server.stop()
        chats.stop()


def test_every_paid_response_is_one_usage_event(run: Run) -> None:
    recorded = [e.usage for events in run.usages.values() for e in events]
    paid = run.server.paid_responses()
    missing = {p.request_id for p in paid} - {str(u.request_id) for u in recorded}
    assert len(recorded) == len(paid), [p.content for p in paid if p.request_id in missing]
    assert sorted(str(u.request_id) for u in recorded) == sorted(p.request_id for p in paid)


@pytest.mark.parametrize(
    ("case", "paid", "requests"),
    [
        ("ok", 1, 1),
        ("repair", 2, 2),
        ("throttled", 1, 2),
        ("throttled-repair", 2, 3),
        ("slow", 1, 2),  # the timed-out answer was never delivered, so never paid
        ("refuse", 1, 1),
        ("always-bad", 2 * POLICY.max_attempts, 2 * POLICY.max_attempts),
    ],
)
def test_per_session_calls(run: Run, case: str, paid: int, requests: int) -> None:
    assert run.script.seen[case] == requests
    assert len(run.usages[case]) == paid


@pytest.mark.parametrize("case", ["ok", "repair", "throttled", "throttled-repair", "slow"])
def test_sessions_are_analysed(run: Run, case: str) -> None:
    s = run.sessions[case]
    assert s.stages[AI].status is Status.COMPLETED
    assert s.analysis is not None and s.analysis.language == "nl"
    assert s.stages[Stage.QUESTION_EXTRACTION].status is Status.COMPLETED


def test_the_throttled_repair_reused_the_recorded_answer(run: Run) -> None:
    s = run.sessions["throttled-repair"]
    events = run.usages["throttled-repair"]
    assert [e.usage.purpose for e in events] == ["analysis", "analysis-repair"]
    assert [e.attempt for e in events] == [1, 2]
    assert s.stages[AI].attempt == 2
    assert s.stages[AI].metadata["reused_recorded_response"] is True
    assert s.stages[AI].metadata["repaired"] is True


def test_invalid_answers_are_retried_with_backoff_until_the_policy_gives_up(run: Run) -> None:
    state = run.sessions["always-bad"].stages[AI]
    assert (state.status, state.error_type) == (Status.FAILED, "invalid_output")
    assert state.retry_at is None and state.retryable is False
    assert state.attempt == state.attempts_run == POLICY.max_attempts
    assert "retries exhausted" in (state.error_message or "")


@pytest.mark.parametrize(("case", "error_type"), [("refuse", "refused")])
def test_bad_answers_fail_for_good(run: Run, case: str, error_type: str) -> None:
    state = run.sessions[case].stages[AI]
    assert state.status is Status.FAILED
    assert state.error_type == error_type
    assert state.retry_at is None and state.attempt == 1
