"""Issue 18 §1: a company's AI budget makes its AI work wait, not fail, and raising it (or the
next period) lets the work go on; the cap holds within the requests already in flight.

Real daemon (`livedash run`), real OpenAI-compatible server on 127.0.0.1, both databases.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.budget import AIBudget, BudgetError, BudgetPeriod, check_budget, parse_budget
from tests.conftest import Livedash
from tests.openai_server import FakeOpenAI
from tests.servers import RouteServer
from tests.test_cli_ai_provider import export

SESSIONS = 12
CONCURRENCY = 1


def run_until_idle(livedash: Livedash, ai: FakeOpenAI) -> None:
    job = Livedash(
        livedash.database_url,
        livedash.cwd,
        {
            **livedash.env,
            "OPENAI_API_KEY": "sk-budget",
            "OPENAI_BASE_URL": ai.base_url,
            "LIVEDASH_AI_MODEL": "gpt-4o-mini",
            "LIVEDASH_FETCH_ALLOW_HOSTS": "127.0.0.1",
        },
    )
    job(
        "run", "--until-idle", "--idle-horizon", "0", "--csv-interval", "0",
        "--poll-interval", "0.2", "--concurrency", f"AI_ANALYSIS={CONCURRENCY}",
    )  # fmt: skip


def ai_statuses(livedash: Livedash) -> dict[str, int]:
    report = json.loads(livedash("status", "--json").stdout)
    return {k: v for k, v in report["stages"]["AI_ANALYSIS"].items() if v}


def test_a_reached_budget_holds_ai_work_until_it_is_raised(
    livedash: Livedash, tmp_path: Path
) -> None:
    with RouteServer() as chats, FakeOpenAI(api_key="sk-budget", latency=0.3) as ai:
        csv = export(tmp_path, chats, SESSIONS)
        livedash("init")
        # Far below one request's estimated cost: the first request sent reaches it.
        livedash("company", "add", "AI Co", "--csv-url", str(csv), "--ai-budget", "0.000001/day")
        livedash("import", str(csv), "--company", "AI Co")
        run_until_idle(livedash, ai)
        first = ai.paid

        waiting = ai_statuses(livedash)
        assert waiting.get("FAILED", 0) == 0, waiting  # a budget makes work wait, never fail
        assert 1 <= first < SESSIONS and waiting.get("PENDING") == SESSIONS - first
        # The overshoot is the requests in flight when the gate closed, plus those claimed
        # before this daemon read the spend again (at most every 0.5 s, at 0.3 s a request).
        assert first <= 4 * CONCURRENCY, first
        report = json.loads(livedash("status", "--json").stdout)
        [budget] = report["budgets"]
        assert (budget["scope"], budget["budget"], budget["reached"]) == (
            "AI Co",
            "0.000001/day",
            True,
        )
        assert budget["waiting_sessions"] == SESSIONS - first
        assert Decimal(str(budget["spent_eur"])) > Decimal("0.000001")
        assert "budget reached" in livedash("status").stdout
        history = json.loads(livedash("company", "history", "AI Co", "--json").stdout)
        reached = [e for e in history["events"] if e["event"] == "AIBudgetReached"]
        assert len(reached) == 1 and reached[0]["data"]["budget_eur"] == "0.000001"
        info = json.loads(livedash("company", "list", "--json").stdout)
        assert info[0]["ai_budget"] == "0.000001/day"

        livedash("company", "update", "AI Co", "--ai-budget", "100/month")
        run_until_idle(livedash, ai)
        assert ai.paid == SESSIONS  # the rest went on, nothing was paid twice
    assert ai_statuses(livedash) == {"COMPLETED": SESSIONS}
    [budget] = json.loads(livedash("status", "--json").stdout)["budgets"]
    assert budget["reached"] is False and budget["budget"] == "100/month"


def test_a_budget_that_does_not_parse_is_refused_with_the_form(livedash: Livedash) -> None:
    livedash("init")
    bad = livedash("company", "add", "X", "--csv-url", "x.csv", "--ai-budget", "lots", check=False)
    assert bad.code != 0 and "50/month" in bad.stderr
    env = {**livedash.env, "LIVEDASH_AI_BUDGET": "-3/day"}
    refused = Livedash(livedash.database_url, livedash.cwd, env)("status", check=False)
    assert refused.code == 2 and "LIVEDASH_AI_BUDGET" in refused.stderr


amounts = st.decimals(min_value=0, max_value=10_000, places=4, allow_nan=False)
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)
zones = st.sampled_from(["UTC", "Europe/Amsterdam", "America/New_York", "Asia/Kolkata"])


@given(amounts, st.sampled_from(list(BudgetPeriod)), moments, zones, amounts)
def test_a_period_contains_now_and_a_stop_means_spend_reached_the_budget(
    amount: Decimal, period: BudgetPeriod, now: datetime, zone: str, spent: Decimal
) -> None:
    budget = AIBudget(amount, period)
    start, end = budget.window(now, zone)
    assert start <= now < end
    local_start = start.astimezone(ZoneInfo(zone))
    assert (local_start.hour, local_start.minute) == (0, 0)
    if period is BudgetPeriod.MONTH:
        assert local_start.day == 1
    stop = check_budget("c", budget, spent, now, zone)
    assert (stop is not None) == (spent >= amount)
    if stop is not None:
        assert stop.resumes_at == end and stop.period_start == start
    assert parse_budget(str(budget)) == budget


@pytest.mark.parametrize("text", ["lots", "5/week", "-1/day", "NaN/month"])
def test_bad_budgets(text: str) -> None:
    with pytest.raises(BudgetError):
        parse_budget(text)
