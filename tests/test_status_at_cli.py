"""`livedash status --at T` and `--between T1 T2` through the real command, on both databases:
the answer equals the aggregate's fold of the log, at "now" it equals the live overview, the
window's figures add up, and the answer survives `projections rebuild` (plain and swapped)
and `projections verify`."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

from cli.errors import ExitCode
from cli.runtime import Runtime, all_projections
from domain.company import Company
from domain.errors import DomainError
from domain.payloads import AIUsage
from domain.session import Session
from domain.stages import Stage
from projections.overview_history import OVERVIEW_HISTORY
from projections.queries import status_report
from projections.shadow import swap_in
from projections.verify import verify
from tests.conftest import Livedash
from tests.factories import Clock, row
from tests.harness import runtime
from tests.test_status_at import folded_at

COST = Decimal("0.0012345")


def usage(at: Any) -> AIUsage:
    return AIUsage(
        provider="test", model_requested="m-1", model_returned="m-1", request_id=None,
        prompt_tokens=10, completion_tokens=5, cached_tokens=0, reasoning_tokens=0,
        total_tokens=15, cost_usd=None, cost_eur=COST, price_source="test",
        response_text=None, requested_at=at, received_at=at,
    )  # fmt: skip


def seed(rt: Runtime) -> tuple[list[Any], int]:
    """30 sessions of company Alpha, moved through the stages at sub-second steps: some
    fail for good, some are retried, each analysis is a paid call. Returns the stamps."""
    clock = Clock()
    company = Company.register("Alpha", "https://csv.example/a.csv", clock())
    rt.app.register_company(company)
    sessions: list[Session] = []
    for i in range(30):
        s = Session.import_row(company.id, row(external_id=f"s{i}"), "t.csv", clock.advance(0.3))
        sessions.append(s)
        for stage in (Stage.TRANSCRIPT_FETCH, Stage.SESSION_CREATION, Stage.AI_ANALYSIS):
            now = clock.advance(0.4)
            with contextlib.suppress(DomainError):
                a = s.start_stage(stage, "w1", now + timedelta(minutes=5), now)
                if stage is Stage.AI_ANALYSIS:
                    s.record_ai_usage(stage, a, usage(now))
                if i % 7 == 3 and stage is Stage.SESSION_CREATION:
                    s.fail_stage(stage, a, "parse_error", "bad", False, None, clock.advance(0.2))
                else:
                    s.complete_stage(stage, a, clock.advance(0.2), {})
        if i % 7 == 3 and i < 10:  # an operator's retry of a dead failure
            s.reset_stage(Stage.SESSION_CREATION, "retry", "ops", clock.advance(0.1))
        if i % 10 == 0:
            rt.app.save_batch(sessions)
    rt.app.save_batch(sessions)
    rt.runner.catch_up()
    stamps = sorted({e.timestamp for s in sessions for e in rt.app.session_events(s.id)})
    paid = sum(1 for s in sessions for e in rt.app.session_events(s.id)
               if isinstance(e, Session.AIUsageRecorded))  # fmt: skip
    return stamps, paid


def _at(livedash: Livedash, at: Any) -> dict[str, Any]:
    return json.loads(livedash("status", "--at", at.isoformat(), "--json").stdout)


def _counts(report: dict[str, Any]) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for stage, counts in report["stages"].items():
        found.update({(stage, status): n for status, n in counts.items() if n})
    for stage, needs in report["needs_processing"].items():
        if needs["failed_retrying"]:
            found[(stage, "RETRY_SCHEDULED")] = needs["failed_retrying"]
    return found


def test_status_at_and_between_through_the_cli(livedash: Livedash) -> None:
    on_sqlite = livedash.database_url.startswith("sqlite")
    livedash("init")
    with runtime(livedash.database_url, create=False) as rt:
        stamps, paid = seed(rt)
        middle = stamps[len(stamps) // 2] + timedelta(microseconds=1)
        expected = folded_at(rt, middle)
        with rt.engine.connect() as conn:
            live = status_report(conn)

        answer = _at(livedash, middle)
        assert _counts(answer) == expected and 0 < answer["total_sessions"] < 30
        if on_sqlite:  # one command less on PostgreSQL: each costs ~1.5 s of start-up
            latest = _at(livedash, stamps[-1] + timedelta(days=1))
            assert latest["stages"] == live.stages and latest["total_sessions"] == 30
            assert latest["needs_processing"] == {
                k: v.model_dump() for k, v in live.needs_processing.items()
            }

        start = (stamps[0] - timedelta(seconds=1)).isoformat()
        window = json.loads(
            livedash("status", "--between", start, middle.isoformat(), "--company", "Alpha",
                     "--json").stdout, parse_float=Decimal
        )  # fmt: skip
        assert window["company"] == "Alpha" and window["before"]["total_sessions"] == 0
        assert window["after"]["stages"] == answer["stages"]
        assert window["sessions_imported"] == answer["total_sessions"]
        moved: Counter[tuple[str, str | None]] = Counter()
        for t in window["transitions"]:
            moved[(t["stage"], t["to_status"])] += t["count"]
        for stage, counts in window["change"].items():
            for status, n in counts.items():
                assert moved[(stage, status)] - sum(
                    t["count"] for t in window["transitions"]
                    if t["stage"] == stage and t["from_status"] == status
                ) == n  # fmt: skip
        assert [(r["stage"], r["actor"], r["count"]) for r in window["resets"]] == [
            ("SESSION_CREATION", "ops", 1)
        ]
        assert window["failures_total"] >= 1
        calls = sum(c["calls"] for c in window["ai_calls"])
        assert 0 < calls < paid
        assert window["cost_eur"] == COST * calls

        # Rebuilt beside the live tables and swapped in, then rebuilt in place: same answer.
        swap_in(rt.runner, [p for p in all_projections() if p.name == OVERVIEW_HISTORY])
        rt.runner.rebuild(OVERVIEW_HISTORY)
        assert verify(rt.runner, all_projections).identical
        assert _at(livedash, middle) == answer

    if on_sqlite:
        text = livedash("status", "--between", start, middle.isoformat()).stdout
        assert "Transitions" in text and "imported" in text and "EUR" in text
        assert livedash("status", "--at", "yesterday", check=False).code == ExitCode.USAGE
