"""Issue 18 §1 across a fleet: two daemons on one PostgreSQL share a company's AI budget.

Each daemon reads the spend the other recorded (the log, not its own memory), so the cap holds
for the fleet: the overshoot is bounded by the requests in flight when it was reached, and the
work that waits is PENDING, never FAILED, and is paid once when the budget is raised.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import LIVEDASH, REPO, Livedash
from tests.openai_server import FakeOpenAI
from tests.servers import RouteServer
from tests.test_budgets import ai_statuses
from tests.test_cli_ai_provider import export

SESSIONS = 16
DAEMONS = 2
CONCURRENCY = 2


def run_fleet(livedash: Livedash, ai: FakeOpenAI) -> None:
    """Two real daemons started together, each until it finds nothing to do."""
    env = {
        **livedash.env,
        "LIVEDASH_DATABASE_URL": livedash.database_url,
        "OPENAI_API_KEY": "sk-budget",
        "OPENAI_BASE_URL": ai.base_url,
        "LIVEDASH_AI_MODEL": "gpt-4o-mini",
        "LIVEDASH_FETCH_ALLOW_HOSTS": "127.0.0.1",
    }
    args = [
        "run", "--until-idle", "--idle-horizon", "0", "--csv-interval", "0",
        "--poll-interval", "0.2", "--concurrency", f"AI_ANALYSIS={CONCURRENCY}",
    ]  # fmt: skip
    fleet = [
        subprocess.Popen(
            [*LIVEDASH, *args, "--worker-id", f"d{i}"],
            cwd=livedash.cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(DAEMONS)
    ]
    try:
        for daemon in fleet:
            out, _ = daemon.communicate(timeout=120)
            assert daemon.returncode == 0, out
    finally:
        for daemon in fleet:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait(timeout=10)


def workers_of_ai_claims(livedash: Livedash) -> set[str]:
    found = livedash("events", "--type", "StageStarted", "--stage", "AI_ANALYSIS", "--json")
    return {json.loads(line)["worker"] for line in found.stdout.splitlines() if line.strip()}


def test_two_daemons_hold_one_budget_and_pay_each_session_once(pg_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
    livedash = Livedash(pg_url, tmp_path, {**env, "PYTHONPATH": str(REPO), "COLUMNS": "200"})
    with RouteServer() as chats, FakeOpenAI(api_key="sk-budget", latency=0.3) as ai:
        csv = export(tmp_path, chats, SESSIONS)
        livedash("init")
        livedash("company", "add", "AI Co", "--csv-url", str(csv), "--ai-budget", "0.000001/day")
        livedash("import", str(csv), "--company", "AI Co")
        run_fleet(livedash, ai)
        first = ai.paid

        waiting = ai_statuses(livedash)
        assert waiting.get("FAILED", 0) == 0, waiting
        assert waiting.get("PENDING") == SESSIONS - first, (waiting, first)
        # Together the daemons overshot by no more than what each had in flight, plus the
        # claims made before each read the spend again (at most every 0.5 s).
        assert 1 <= first <= DAEMONS * 2 * CONCURRENCY, first
        [budget] = json.loads(livedash("status", "--json").stdout)["budgets"]
        assert budget["reached"] is True and budget["waiting_sessions"] == SESSIONS - first
        history = json.loads(livedash("company", "history", "AI Co", "--json").stdout)
        reached = [e for e in history["events"] if e["event"] == "AIBudgetReached"]
        assert len(reached) == 1, "the moment is recorded once, whichever daemon saw it first"

        livedash("company", "update", "AI Co", "--ai-budget", "100/month")
        run_fleet(livedash, ai)
        assert ai.paid == SESSIONS, "the rest went on, and no session was paid twice"
        assert workers_of_ai_claims(livedash) == {"d0", "d1"}, "both daemons did AI work"
    assert ai_statuses(livedash) == {"COMPLETED": SESSIONS}
