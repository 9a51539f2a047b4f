"""`run --ai-mode batch` and `reprocess --batch` through the real `livedash` command, against the
fake server's files and batches endpoints, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

from tests.conftest import Livedash
from tests.openai_server import FakeOpenAI
from tests.servers import RouteServer
from tests.test_cli_ai_provider import export, prepare

KEY = "sk-batch-cli"


def batch_run(
    livedash: Livedash, ai: FakeOpenAI, mode: str = "batch", size: int = 4
) -> tuple[int, str]:
    """``size`` is the number of sessions: a full batch goes at once, so however slowly they
    become due, they go out as one batch (the gather time is long)."""
    job = Livedash(
        livedash.database_url,
        livedash.cwd,
        {**livedash.env, **env(ai), "LIVEDASH_FETCH_ALLOW_HOSTS": "127.0.0.1"},
    )
    result = job(
        "run",
        "--until-idle",
        "--csv-interval",
        "0",
        "--poll-interval",
        "0.1",
        "--ai-mode",
        mode,
        "--ai-batch-poll",
        "0.1",
        "--ai-batch-gather",
        "30",
        "--ai-batch-size",
        str(size),
        check=False,
    )
    return result.code, result.stderr


def env(ai: FakeOpenAI) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": ai.base_url,
        "LIVEDASH_AI_MODEL": "gpt-4o-mini",
    }


def test_batch_mode_and_reprocess_batch_through_the_command(
    livedash: Livedash, tmp_path: Path
) -> None:
    with RouteServer() as chats, FakeOpenAI(api_key=KEY) as ai:
        prepare(livedash, export(tmp_path, chats, 4))
        ai.batches.polls_to_finish = 2
        code, err = batch_run(livedash, ai)
        assert code == 0, err
        assert ai.batches.creates == 1 and ai.paid == 4
        assert '"event": "batch_finished"' in err
        costs = json.loads(livedash("costs", "--json").stdout)
        assert costs["requests"] == 4 and costs["requests_answer_lost"] == 0
        first_cost = Decimal(str(costs["total_cost_eur"]))
        events = json.loads(livedash("history", "ai-0", "--company", "AI Co", "--json").stdout)
        usage = [e for e in events["events"] if e["event"] == "AIUsageRecorded"]
        assert usage[0]["data"]["price_source"].endswith("gpt-4o-mini 2024-07-18 batch")

        tool = Livedash(livedash.database_url, livedash.cwd, {**livedash.env, **env(ai)})
        standard = json.loads(tool("reprocess", "--dry-run", "--json").stdout)
        halved = json.loads(tool("reprocess", "--dry-run", "--batch", "--json").stdout)
        assert halved["ai_cost_estimate"]["tier"] == "batch"
        assert Decimal(str(halved["ai_cost_estimate"]["cost_eur"])) * 2 == Decimal(
            str(standard["ai_cost_estimate"]["cost_eur"])
        )
        done = json.loads(tool("reprocess", "--batch", "--yes", "--json").stdout)
        assert done["reset"] == 4
        assert [(b["requests"], b["status"]) for b in done["batches"]] == [(4, "validating")]
        assert ai.batches.creates == 2
        open_now = json.loads(livedash("batches", "--json").stdout)
        assert [(b["requests"], b["finished"]) for b in open_now] == [(4, False)]
        assert open_now[0]["provider_batch_id"] == done["batches"][0]["provider_batch_id"]

        # A standard-mode daemon collects the batch reprocess submitted (and pays nothing more).
        ai.batches.polls_to_finish = 1
        code, err = batch_run(livedash, ai, "standard")
        assert code == 0, err
        assert ai.batches.creates == 2 and ai.paid == 8 and ai.total == 8
        assert '"event": "batch_resumed"' in err
    costs = json.loads(livedash("costs", "--json").stdout)
    assert costs["requests"] == 8 and costs["requests_answer_lost"] == 0
    assert Decimal(str(costs["total_cost_eur"])) == 2 * first_cost
    events = json.loads(livedash("history", "ai-3", "--company", "AI Co", "--json").stdout)
    analysed = [e for e in events["events"] if e["event"] == "AnalysisRecorded"]
    assert len(analysed) == 2
    every = json.loads(livedash("batches", "--all", "--json").stdout)
    assert [(b["status"], b["finished"]) for b in every] == [("completed", True)] * 2
    livedash("audit", "verify")  # the batches' own events are in the hash chain too


def test_a_killed_batch_daemon_resumes_polling_and_never_submits_twice(
    livedash: Livedash, tmp_path: Path
) -> None:
    with RouteServer() as chats, FakeOpenAI(api_key=KEY) as ai:
        prepare(livedash, export(tmp_path, chats, 3))
        ai.batches.polls_to_finish = 1_000_000  # still running when the daemon is killed
        job = Livedash(
            livedash.database_url,
            livedash.cwd,
            {**livedash.env, **env(ai), "LIVEDASH_FETCH_ALLOW_HOSTS": "127.0.0.1"},
        )
        daemon = job.spawn(
            "run",
            "--csv-interval",
            "0",
            "--poll-interval",
            "0.1",
            "--ai-mode",
            "batch",
            "--ai-batch-poll",
            "0.1",
            "--ai-batch-gather",
            "30",
            "--ai-batch-size",
            "3",
        )
        try:
            deadline = time.monotonic() + 60
            while not (ai.batches.creates and ai.batches.polls >= 2):
                assert time.monotonic() < deadline, "no batch polled within 60 s"
                assert daemon.poll() is None, "the daemon exited"
                time.sleep(0.05)
        finally:
            daemon.kill()  # SIGKILL: no graceful stop, nothing recorded at exit
            daemon.wait(timeout=30)
        assert ai.paid == 0
        ai.batches.polls_to_finish = 1  # the next poll finds it done
        code, err = batch_run(livedash, ai, size=3)
        assert code == 0, err
        assert '"event": "batch_resumed"' in err
        assert ai.batches.creates == 1 and ai.paid == 3
    report = json.loads(livedash("status", "--json").stdout)
    assert report["stages"]["AI_ANALYSIS"]["COMPLETED"] == 3, report["stages"]
    costs = json.loads(livedash("costs", "--json").stdout)
    assert costs["requests"] == 3 and costs["requests_answer_lost"] == 0


def test_batch_mode_needs_the_openai_analyser(livedash: Livedash) -> None:
    livedash("init")
    result = livedash("run", "--until-idle", "--ai-mode", "batch", check=False)
    assert result.code != 0
    assert "Batch API mode needs the OpenAI analyser" in result.stderr
    bad = livedash("run", "--ai-mode", "cheap", check=False)
    assert bad.code != 0 and "--ai-mode" in bad.stderr
