"""AI_ANALYSIS through the Batch API: the real daemon, event store and `openai` client against
the fake server's files and batches endpoints, on SQLite and PostgreSQL.

Checked in the event log: every answered line is one `AIUsageRecorded` at the batch price;
failed and unanswered lines go back to retries (and the next batch answers them); a crash
between creating the batch and recording its id resumes polling and never creates twice.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from cli.bootstrap import build_processors
from cli.settings import Settings
from domain.ai_batch import AIBatch
from domain.budget import AIBudget, BudgetPeriod
from domain.company import Company
from domain.session import Session, session_id_for
from domain.stages import WORKER_STAGES, Stage, Status
from domain.transcript import parse_transcript
from processors.ai.batch_api import BatchAPI
from processors.ai.batch_requests import build_line, intent
from processors.ai.config import OpenAIAnalyserConfig
from processors.clock import utc_now
from processors.ingest import importer as csv_import
from processors.runtime.batch_settings import BatchSettings
from processors.runtime.batches import BatchDriver, CrashForTest
from processors.runtime.config import DaemonConfig, StageConfig
from processors.runtime.daemon import Daemon
from processors.runtime.reporting import JsonLogReporter
from processors.runtime.retry import RetryPolicy
from tests.harness import runtime
from tests.openai_server import FakeOpenAI, schema_invalid
from tests.servers import RouteServer, text

AI = Stage.AI_ANALYSIS
KEY = "sk-batch"
HARD_CAP = 30.0


def chat(i: int) -> str:
    return (
        f"[01.10.2026 10:00:05] User: Hallo {i}, ik ben ziek. Wie moet ik bellen?\n"
        "[01.10.2026 10:00:09] Assistant: Meld je ziek bij je leidinggevende.\n"
    )


@dataclass
class World:
    url: str
    company: Company
    server: FakeOpenAI
    n: int
    chats: RouteServer

    def ids(self) -> list[str]:
        return [f"b{i}" for i in range(self.n)]


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    n = 6
    chats = RouteServer({f"/c{i}.txt": text(chat(i)) for i in range(n)}).start()
    server = FakeOpenAI(api_key=KEY).start()
    csv = tmp_path / "sessions.csv"
    csv.write_text(
        "".join(
            f"b{i},01.10.2026 10:00:00,01.10.2026 10:05:00,192.0.2.1,NL,dutch,2,happy,no,no,"
            f"{chats.url(f'/c{i}.txt')},2.5,100,0.0010,Sick,hallo\n"
            for i in range(n)
        )
    )
    try:
        with runtime(database_url) as rt:
            company = rt.app.register_company(Company.register("Batch Co", str(csv), utc_now()))
            csv_import.run_import(rt.app, rt.runner, company, csv_import.file_reader(csv), utc_now)
        world = World(database_url, company, server, n, chats)
        run_daemon(world, batch=False)
        yield world
    finally:
        server.stop()
        chats.stop()


def run_daemon(
    world: World, crash: bool = False, batch: bool = True
) -> tuple[BatchDriver, list[dict[str, object]]]:
    """One `run --ai-mode batch --until-idle`, in process (the CLI test runs the command);
    without ``batch``, only fetch and creation: every session is then due for a batch at once,
    so the tests' first batch holds them all however busy the machine is."""
    settings = Settings(database_url=world.url, fetch_allow_hosts=("127.0.0.1",))
    cfg = OpenAIAnalyserConfig(api_key=KEY, base_url=world.server.base_url, timeout=5)
    stream = io.StringIO()
    reporter = JsonLogReporter(stream=stream)
    with runtime(world.url) as rt:
        client = openai.OpenAI(api_key=KEY, base_url=world.server.base_url, max_retries=0)
        driver = BatchDriver(
            rt.app,
            rt.engine,
            BatchAPI(client),
            cfg,
            BatchSettings(
                size=50,
                poll_interval=0.05,
                gather=0.0,
                send_lease=0.3,
                policy=RetryPolicy(max_attempts=3),
            ),
            utc_now,
            reporter.log,
            crash_after_create=crash,
        )
        configs = {
            s: StageConfig(concurrency=4, timeout=5, lease_seconds=10) for s in WORKER_STAGES
        }
        daemon = Daemon(
            rt.app,
            rt.runner,
            build_processors(settings, {}.get, configs),
            DaemonConfig(
                worker_id="batch-test",
                stages=tuple(s for s in WORKER_STAGES if s is not AI)
                if batch
                else (Stage.TRANSCRIPT_FETCH, Stage.SESSION_CREATION),
                stage_configs=configs,
                until_idle=True,
                idle_horizon=5,
                poll_interval=0.05,
                level_interval=0.1,
                grace_seconds=1,
            ),
            utc_now,
            reporter,
            [driver] if batch else [],
        )
        watchdog = threading.Timer(HARD_CAP, daemon.request_stop)
        watchdog.start()
        try:
            summary = daemon.run()
        finally:
            watchdog.cancel()
            driver.close()
        log = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert summary.stopped_by == "idle", log[-5:]
    return driver, log


def sessions(world: World) -> dict[str, Session]:
    with runtime(world.url) as rt:
        return {e: rt.app.get_session(session_id_for(world.company.id, e)) for e in world.ids()}


def batches(world: World, driver: BatchDriver) -> list[AIBatch]:
    with runtime(world.url) as rt:
        found = [rt.app.find_batch(b.id) for b in driver.submitted]
    return [b for b in found if b is not None]


def test_round_trip_with_failed_lines_retried_in_the_next_batch(world: World) -> None:
    world.server.batches.polls_to_finish = 2
    seen = itertools.count()

    def fail_once(_cid: str) -> bool:  # the second line answered fails (its retry succeeds)
        return next(seen) == 1

    world.server.batches.failing = fail_once
    world.server.script([schema_invalid()])  # the first answered line is not a valid analysis
    driver, log = run_daemon(world)
    found = sessions(world)
    assert all(s.stages[AI].status is Status.COMPLETED for s in found.values()), {
        e: (s.stages[AI].status, s.stages[AI].error_type) for e, s in found.items()
    }
    assert all(
        s.stages[Stage.QUESTION_EXTRACTION].status is Status.COMPLETED for s in found.values()
    )
    made = [
        (b.body["metadata"]["livedash_batch"], len(b.lines))
        for b in world.server.batches.batches.values()
    ]
    assert len({key for key, _ in made}) == len(made) == world.server.batches.creates  # none twice
    assert [n for _, n in made] == [6, 2], made  # six lines, then the two that failed again
    assert world.server.paid == 7  # 6 answered + 1 again (the invalid one); the 500 is unpaid
    usages = [u for s in found.values() for _, _, u in s.ai_usage]
    assert len(usages) == 7
    assert all(u.price_source.endswith(" batch") for u in usages)
    standard = Decimal("0.15") * sum(u.prompt_tokens for u in usages) + Decimal("0.60") * sum(
        u.completion_tokens for u in usages
    )
    total_usd = sum((u.cost_usd or Decimal(0) for u in usages), Decimal(0))
    assert total_usd * 2 * 1_000_000 == standard
    meta = found["b0"].stages[AI].metadata
    assert meta["ai_mode"] == "batch" and meta["batch_id"].startswith("batch_")
    done = batches(world, driver)
    assert [(b.status, b.finished) for b in done] == [("completed", True)] * len(made)
    kinds = {line["event"] for line in log}
    assert {"batch_prepared", "batch_submitted", "batch_finished"} <= kinds


def test_crash_after_create_resumes_polling_and_never_creates_twice(world: World) -> None:
    with pytest.raises(CrashForTest):
        run_daemon(world, crash=True)
    assert world.server.batches.creates == 1
    found = sessions(world)
    assert all(s.stages[AI].status is Status.IN_PROGRESS for s in found.values())
    _driver, log = run_daemon(world)  # a new process: finds the batch by its metadata
    assert world.server.batches.creates == 1
    assert any(line["event"] == "batch_resumed" for line in log)
    resumed = [line for line in log if line["event"] == "batch_submitted"]
    assert [line["found_again"] for line in resumed] == [True]
    found = sessions(world)
    assert all(s.stages[AI].status is Status.COMPLETED for s in found.values())
    assert world.server.paid == world.n


def test_expired_batch_answers_part_and_the_rest_is_retried(world: World) -> None:
    world.server.batches.outcome = "expired"
    world.server.batches.answer_before_expiry = 4
    state = {"batches": 0}
    original = world.server.batches._finish

    def finish(batch: Any, outcome: str) -> None:  # the second batch completes
        state["batches"] += 1
        if state["batches"] > 1:
            outcome = "completed"
        original(batch, outcome)

    world.server.batches._finish = finish  # type: ignore[method-assign]
    driver, _log = run_daemon(world)
    found = sessions(world)
    assert all(s.stages[AI].status is Status.COMPLETED for s in found.values())
    assert world.server.batches.creates == 2
    assert world.server.paid == world.n
    done = batches(world, driver)
    assert [b.status for b in done] == ["expired", "completed"]
    retried = [s for s in found.values() if s.stages[AI].attempt == 2]
    assert len(retried) == 2


def test_failed_validation_sends_every_session_back_to_retries(world: World) -> None:
    world.server.batches.outcome = "failed"
    run_daemon(world)
    found = sessions(world)
    states = [s.stages[AI] for s in found.values()]
    assert all(s.status is Status.FAILED and s.error_type == "batch_failed" for s in states)
    assert all(s.retry_at is None and s.attempt == 3 for s in states)  # the policy gave up
    assert world.server.paid == 0 and world.server.batches.creates == 3
    assert all(not s.ai_usage for s in found.values())


def test_a_batch_takes_only_what_the_budget_covers(world: World) -> None:
    cfg = OpenAIAnalyserConfig(api_key=KEY, base_url=world.server.base_url)
    line = build_line(cfg, cfg.default_model, parse_transcript(chat(9)), "probe")
    one = intent(cfg, line, cfg.default_model, utc_now()).cost_eur_estimated
    assert one is not None
    budget = one * 5 / 2  # two requests' upper bound fit, three do not
    with runtime(world.url) as rt:
        company = rt.app.get_company(world.company.id)
        company.set_ai_budget(AIBudget(budget, BudgetPeriod.DAY), "test", "budget", utc_now())
        rt.app.save(company)
    driver, _log = run_daemon(world)
    first = batches(world, driver)[0]
    assert len(first.requests) == 2
    assert first.cost_eur_estimated is not None and first.cost_eur_estimated <= budget
    found = sessions(world)
    paid = [u.cost_eur or Decimal(0) for s in found.values() for _, _, u in s.ai_usage]
    assert sum(paid, Decimal(0)) <= budget
    assert all(s.stages[AI].status in (Status.COMPLETED, Status.PENDING) for s in found.values())


def test_reprocess_submits_one_batch_per_model(world: World, tmp_path: Path) -> None:
    csv = tmp_path / "other.csv"
    csv.write_text(
        "".join(
            f"o{i},01.10.2026 10:00:00,01.10.2026 10:05:00,192.0.2.1,NL,dutch,2,happy,no,no,"
            f"{world.chats.url(f'/c{i}.txt')},2.5,100,0.0010,Sick,hallo\n"
            for i in range(2)
        )
    )
    with runtime(world.url) as rt:
        other = rt.app.register_company(Company.register("Other Co", str(csv), utc_now()))
        other.change_settings(utc_now(), ai_model="gpt-4.1-nano", actor="test", reason="test")
        rt.app.save(other)
        csv_import.run_import(rt.app, rt.runner, other, csv_import.file_reader(csv), utc_now)
    run_daemon(world, batch=False)
    with runtime(world.url) as rt:
        rt.runner.catch_up()
        ids = [session_id_for(world.company.id, e) for e in world.ids()]
        ids[3:3] = [session_id_for(other.id, f"o{i}") for i in range(2)]  # models interleaved
        client = openai.OpenAI(api_key=KEY, base_url=world.server.base_url, max_retries=0)
        cfg = OpenAIAnalyserConfig(api_key=KEY, base_url=world.server.base_url)
        driver = BatchDriver(
            rt.app,
            rt.engine,
            BatchAPI(client),
            cfg,
            BatchSettings(size=5),
            utc_now,
            lambda *a, **k: None,
        )
        made = driver.submit_sessions(ids)
        driver.close()
    assert [(b.model, len(b.requests)) for b in made] == [
        ("gpt-4o-mini", 3),
        ("gpt-4.1-nano", 2),
        ("gpt-4o-mini", 3),
    ]
    assert world.server.batches.creates == 3
    run_daemon(world)  # collects them
    found = sessions(world)
    assert all(s.stages[AI].status is Status.COMPLETED for s in found.values()), {
        e: (s.stages[AI].status, s.stages[AI].error_type, s.stages[AI].worker)
        for e, s in found.items()
    }
    assert world.server.paid == world.n + 2
