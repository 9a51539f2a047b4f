"""Analytics read model and reports: the demo data through the real daemon (offline analyser),
question catalogues kept per company, exact cost sums, and reprocessing."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from domain.payloads import AIUsage
from domain.session import Session
from domain.stages import Stage
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
