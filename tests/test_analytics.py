"""Analytics read model and reports: the demo data through the real daemon (offline analyser),
question catalogues kept per company, exact cost sums, and reprocessing."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select as sa_select

from domain.payloads import AIUsage
from domain.session import Session
from domain.stages import Stage
from projections.schema import ai_usage
from tests.conftest import REPO, Livedash
from tests.factories import T0, Clock, row
from tests.harness import runtime

DEMO = REPO / "examples" / "demo"


def _two_companies(livedash: Livedash, tmp: Path) -> None:
    for name in ("Alpha", "Beta"):
        folder = tmp / name
        shutil.copytree(DEMO, folder)
        livedash("company", "add", name, "--csv-url", str(folder / "sessions.csv"),
                 "--timezone", "Europe/Amsterdam")  # fmt: skip
        livedash("import", "--company", name)


def test_report_questions_and_reprocess_on_demo_data(livedash: Livedash, tmp_path: Path) -> None:
    livedash("init")
    _two_companies(livedash, tmp_path)
    livedash("run", "--until-idle", "--idle-horizon", "0", "--csv-interval", "0", timeout=300)

    status = json.loads(livedash("status", "--json").stdout)
    analysed = status["stages"]["AI_ANALYSIS"]["COMPLETED"]
    assert analysed > 200  # two companies × ~130 sessions with messages

    report = json.loads(livedash("report", "--company", "Alpha", "--json").stdout)
    assert report["total_sessions"] == status["total_sessions"] // 2
    assert report["analysed_sessions"] == analysed // 2
    assert sum(report["sentiment"].values()) == report["analysed_sessions"]
    assert sum(report["category"].values()) == report["analysed_sessions"]
    assert sum(report["sessions_per_day"].values()) == report["total_sessions"]
    assert set(report["language"]) >= {"nl", "en", "de", "tr"}
    assert 0 <= report["escalated_rate"] <= 1 and 0 <= report["forwarded_hr_rate"] <= 1
    assert report["avg_session_length_s"] > 0 and report["upstream_tokens"] > 0
    assert report["top_questions"] and report["top_questions"][0]["count"] >= 2

    # A date range narrows the report to those days.
    first_day = min(report["sessions_per_day"])
    one_day = json.loads(
        livedash(
            "report", "--company", "Alpha", "--from", first_day, "--to", first_day, "--json"
        ).stdout
    )
    assert one_day["total_sessions"] == report["sessions_per_day"][first_day]

    # Catalogues are per company: the same question counts once in each, never pooled.
    alpha = json.loads(livedash("questions", "--company", "Alpha", "--top", "3", "--json").stdout)
    both = json.loads(livedash("questions", "--top", "6", "--json").stdout)
    assert {q["company"] for q in alpha} == {"Alpha"}
    assert {q["company"] for q in both} == {"Alpha", "Beta"}
    top = alpha[0]
    beta_same = [q for q in both if q["company"] == "Beta" and q["question"] == top["question"]]
    assert beta_same and beta_same[0]["count"] == top["count"]

    # Reprocess: completed analyses go back to PENDING, history keeps the old ones.
    out = json.loads(livedash("reprocess", "--stage", "AI_ANALYSIS", "--company", "Alpha",
                              "--reason", "new prompt", "--json").stdout)  # fmt: skip
    assert out["reset"] == analysed // 2
    status = json.loads(livedash("status", "--company", "Alpha", "--json").stdout)
    assert status["stages"]["AI_ANALYSIS"]["COMPLETED"] == 0
    livedash("run", "--until-idle", "--idle-horizon", "0", "--csv-interval", "0", timeout=300)
    status = json.loads(livedash("status", "--company", "Alpha", "--json").stdout)
    assert status["stages"]["AI_ANALYSIS"]["COMPLETED"] == analysed // 2
    listed = livedash(
        "sessions", "--company", "Alpha", "--stage", "AI_ANALYSIS", "--status", "COMPLETED",
        "--limit", "1", "--json",
    )  # fmt: skip
    sessions = json.loads(listed.stdout)
    history = json.loads(livedash("history", sessions[0]["session_id"], "--json").stdout)
    kinds = [e["event"] for e in history["events"]]
    assert kinds.count("AnalysisRecorded") == 2 and "StageReset" in kinds
    # The catalogue counts each session once even though its questions were extracted twice.
    again = json.loads(livedash("questions", "--company", "Alpha", "--top", "3", "--json").stdout)
    assert again == alpha


def test_costs_are_exact_sums_of_recorded_usage(database_url: str, tmp_path: Path) -> None:
    from domain.company import Company
    from projections.analytics_queries import Period, costs

    clock = Clock()
    with runtime(database_url) as rt:
        c = Company.register("Costly", "x.csv", clock())
        rt.app.register_company(c)
        prices = [Decimal("0.00012345"), Decimal("0.00100001"), None]
        sessions = []
        for i, price in enumerate(prices):
            s = Session.import_row(c.id, row(f"c{i}"), "t.csv", clock())
            s.start_stage(Stage.TRANSCRIPT_FETCH, "w", clock.now + timedelta(seconds=9), clock())
            usage = AIUsage(
                provider="openai",
                model_requested="gpt-4o-mini",
                model_returned="gpt-4o-mini-2024-07-18" if price else "mystery-model",
                request_id=f"req-{i}",
                prompt_tokens=1000 + i,
                completion_tokens=100,
                cached_tokens=10,
                reasoning_tokens=0,
                total_tokens=1100 + i,
                cost_usd=price,
                cost_eur=price,
                price_source="test",
                response_text="{}",
                requested_at=T0 + timedelta(days=i),
                received_at=T0 + timedelta(days=i),
            )
            s.record_ai_usage(Stage.TRANSCRIPT_FETCH, 1, usage)
            sessions.append(s)
        rt.app.save_batch(sessions)
        rt.runner.catch_up()
        with rt.engine.connect() as conn:
            total = costs(conn, "day", Period.of(None, None), c.id)
            by_model = costs(conn, "model", Period.of(None, None), c.id)
    assert total.requests == 3
    assert total.total_tokens == 1100 + 1101 + 1102
    assert Decimal(str(total.total_cost_eur)) == Decimal("0.00112346")
    assert total.unknown_cost_requests == 1
    assert [r.key for r in total.rows] == ["2026-10-01", "2026-10-02", "2026-10-03"]
    assert {r.key: r.requests for r in by_model.rows} == {
        "gpt-4o-mini-2024-07-18": 2,
        "mystery-model": 1,
    }


def _record_usages(
    rt: Any, company: str, costs_eur: list[Decimal | None], models: list[str]
) -> None:
    """One session per cost, each with one AI response of that cost (None: unpriced model)."""
    from domain.company import Company

    clock = Clock()
    c = Company.register(company, "x.csv", clock())
    rt.app.register_company(c)
    sessions = []
    for i, (price, model) in enumerate(zip(costs_eur, models, strict=True)):
        s = Session.import_row(c.id, row(f"u{i}"), "t.csv", clock())
        s.start_stage(Stage.TRANSCRIPT_FETCH, "w", clock.now + timedelta(seconds=9), clock())
        usage = AIUsage(
            provider="openai",
            model_requested=model,
            model_returned=model,
            request_id=f"req-{i}",
            prompt_tokens=10,
            completion_tokens=1,
            cached_tokens=0,
            reasoning_tokens=0,
            total_tokens=11,
            cost_usd=price,
            cost_eur=price,
            price_source="test",
            response_text="{}",
            requested_at=T0 + timedelta(hours=i),
            received_at=T0 + timedelta(hours=i),
        )
        s.record_ai_usage(Stage.TRANSCRIPT_FETCH, 1, usage)
        sessions.append(s)
    rt.app.save_batch(sessions)
    rt.runner.catch_up()


# Amounts with more decimals than any fixed scale and than a float holds: each one exact.
EXACT_COSTS = [
    Decimal("0.000016974"),
    Decimal("0.000000069"),
    Decimal("0.123456789012345678"),
    Decimal("0.00354386512345"),
    Decimal("1234567.000000000001"),
    Decimal("0.1"),
    Decimal("0.2"),
    Decimal("0.000000000000000001"),
] * 7


def test_money_sums_are_exact_on_both_databases(database_url: str) -> None:
    """SQLite stored costs as floats (the same legacy migration totalled 0.03543865 on
    PostgreSQL and 0.03543862 on SQLite); now both give the Decimal sum, to the last digit."""
    from projections.analytics_queries import Period, analytics_report, costs

    expected = sum(EXACT_COSTS, Decimal(0))
    with runtime(database_url) as rt:
        _record_usages(rt, "Exact", EXACT_COSTS, ["gpt-4o-mini"] * len(EXACT_COSTS))
        with rt.engine.connect() as conn:
            by_day = costs(conn, "day", Period.of(None, None))
            by_model = costs(conn, "model", Period.of(None, None))
            report = analytics_report(conn, Period.of(None, None))
            stored = conn.execute(sa_select(ai_usage.c.cost_eur)).scalars().all()
    assert sorted(stored) == sorted(EXACT_COSTS)  # every amount read back as stored
    assert by_day.total_cost_eur == expected
    assert str(by_day.total_cost_eur).rstrip("0") == str(expected).rstrip("0")
    assert by_model.total_cost_eur == expected
    assert [r.cost_eur for r in by_model.rows] == [expected]
    assert sum((r.cost_eur or Decimal(0) for r in by_day.rows), Decimal(0)) == expected
    assert report.ai_cost_eur == expected
    assert by_day.unknown_cost_requests == 0


def test_unpriced_model_costs_null_and_unknown(livedash: Livedash) -> None:
    """A model without a price shows `null` in JSON and "unknown" in the table, never 0; a
    total that includes unpriced requests is the known part and says how many it leaves out."""
    with runtime(livedash.database_url) as rt:
        _record_usages(
            rt,
            "Mixed",
            [Decimal("0.000016974"), None, None],
            ["gpt-4o-mini", "mystery-model", "mystery-model"],
        )
    by_model = json.loads(livedash("costs", "--by", "model", "--json").stdout)
    rows = {r["key"]: r for r in by_model["rows"]}
    assert rows["mystery-model"]["cost_eur"] is None
    assert rows["mystery-model"]["unknown_cost_requests"] == 2
    assert rows["gpt-4o-mini"]["cost_eur"] == 0.000016974
    assert by_model["total_cost_eur"] == 0.000016974  # the known part ...
    assert by_model["unknown_cost_requests"] == 2  # ... and what it leaves out
    raw = livedash("costs", "--by", "model", "--json").stdout
    assert '"cost_eur": 0.000016974' in raw  # an exact number, not a string, not 1.6974e-05
    table = livedash("costs", "--by", "model").stdout
    mystery = next(line for line in table.splitlines() if "mystery-model" in line)
    assert "unknown" in mystery and "0.0000" not in mystery
    assert "0.000016974 + 2 unknown" in table  # the total line
    by_day = json.loads(livedash("costs", "--json").stdout)
    assert [(r["cost_eur"], r["unknown_cost_requests"]) for r in by_day["rows"]] == [
        (0.000016974, 2)  # one day: its known part and the unpriced count
    ]
    report = json.loads(livedash("report", "--json").stdout)
    assert report["ai_cost_by_model"] == {"gpt-4o-mini": 0.000016974, "mystery-model": None}
    assert report["ai_cost_eur"] == 0.000016974 and report["ai_unknown_cost_requests"] == 2


def test_only_unpriced_requests_total_unknown(database_url: str) -> None:
    from projections.analytics_queries import Period, costs

    with runtime(database_url) as rt:
        _record_usages(rt, "Unpriced", [None], ["mystery-model"])
        with rt.engine.connect() as conn:
            report = costs(conn, "company", Period.of(None, None))
            empty = costs(conn, "company", Period.of(T0.date().replace(year=2099), None))
    assert report.total_cost_eur is None and report.rows[0].cost_eur is None
    assert report.unknown_cost_requests == 1
    assert empty.requests == 0 and empty.total_cost_eur == 0  # nothing asked, nothing owed


def _as_before_exact_money(rt: Any) -> None:
    """Gives the analytics tables the money columns of the previous version (NUMERIC(18, 8):
    a float on SQLite, rounded to 8 places on PostgreSQL) and refills them from the log."""
    from sqlalchemy import MetaData, Numeric, delete

    from projections.schema import analytics_sessions, projection_tracking, session_questions

    old = MetaData()
    with rt.engine.connect().execution_options(livedash_write=True) as conn, conn.begin():
        for table in (ai_usage, session_questions, analytics_sessions):
            table.drop(conn)
            table.to_metadata(old)
        old.tables["ai_usage"].c.cost_eur.type = Numeric(18, 8)
        old.tables["analytics_sessions"].c.tokens_eur.type = Numeric(18, 6)
        old.create_all(conn)
        conn.execute(delete(projection_tracking).where(projection_tracking.c.name == "analytics"))
    rt.runner.catch_up()


def test_a_database_made_before_exact_money_is_upgraded(livedash: Livedash) -> None:
    """`livedash init` and `livedash projections rebuild` both recreate old money columns and
    refill them from the log, so the totals become exact."""
    from projections.analytics_queries import Period, costs
    from projections.store import money_outdated

    expected = sum(EXACT_COSTS, Decimal(0))

    def total() -> Decimal:
        out = livedash("costs", "--json").stdout
        value: Decimal = json.loads(out, parse_float=Decimal)["total_cost_eur"]
        return value

    with runtime(livedash.database_url) as rt:
        _record_usages(rt, "Old", EXACT_COSTS, ["gpt-4o-mini"] * len(EXACT_COSTS))
        _as_before_exact_money(rt)
        assert money_outdated(rt.engine)
        with rt.engine.connect() as conn:
            lossy = costs(conn, "day", Period.of(None, None)).total_cost_eur
    assert lossy != expected  # what the old column kept: a float, or 8 decimals

    rebuilt = livedash("projections", "rebuild").stdout
    assert "exact money columns" in rebuilt and "rebuilt analytics" in rebuilt
    assert total() == expected

    with runtime(livedash.database_url) as rt:
        _as_before_exact_money(rt)
        assert money_outdated(rt.engine)
    livedash("init")
    with runtime(livedash.database_url, create=False) as rt:
        assert not money_outdated(rt.engine)
    assert total() == expected
    assert "exact money columns" not in livedash("projections", "rebuild").stdout
    assert total() == expected
