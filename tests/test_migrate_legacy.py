"""`livedash migrate-legacy`: both legacy schemas, built in PostgreSQL from the reference, migrated
into SQLite and PostgreSQL; counts, complete histories, idempotence, resumption, bad data, errors,
dry runs, and the daemon finishing the migrated work offline."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from domain.company import company_id_for
from domain.session import Session, session_id_for
from domain.stages import STAGE_ORDER, Stage, Status
from processors.legacy.migration import migrate_legacy
from processors.legacy.options import LegacyMigrationError, MigrationOptions
from processors.legacy.report import MigrationReport
from processors.legacy.variant import LegacySchemaError
from projections.queries import overview
from tests.conftest import REPO, Livedash, fresh_pg_database
from tests.harness import runtime
from tests.legacy_schema import (
    T0,
    Legacy,
    Variant,
    chat,
    create_schema,
    fill_seed_109,
    transcript_for,
)

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
SEED_109 = {
    "CSV_IMPORT": {"COMPLETED": 109},
    "TRANSCRIPT_FETCH": {"COMPLETED": 109},
    "SESSION_CREATION": {"COMPLETED": 109},
    "AI_ANALYSIS": {"COMPLETED": 16, "PENDING": 93},
    "QUESTION_EXTRACTION": {"COMPLETED": 11, "PENDING": 98},
}


# ------------------------------------------------------------------------------- helpers


@contextmanager
def legacy_db(variant: Variant, strict: bool = True) -> Iterator[tuple[str, Legacy]]:
    with fresh_pg_database() as url:
        create_schema(url, variant, strict)
        db = Legacy.connect(url, variant)
        try:
            yield url, db
        finally:
            db.close()


def migrate(legacy_url: str, target_url: str, **options: Any) -> MigrationReport:
    with runtime(target_url) as rt:
        return migrate_legacy(
            legacy_url, rt.app, rt.runner, lambda: NOW, MigrationOptions(**options)
        )


def full(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Expected counts with every status present (zeros included), as reports give them."""
    return {
        stage.value: {s.value: counts.get(stage.value, {}).get(s.value, 0) for s in Status}
        for stage in STAGE_ORDER
    }


def event_count(target_url: str) -> int:
    with runtime(target_url) as rt:
        return int(rt.app.recorder.max_notification_id() or 0)


def projected(target_url: str) -> dict[str, dict[str, int]]:
    with runtime(target_url) as rt:
        rt.runner.catch_up()
        with rt.engine.connect() as conn:
            return overview(conn)


def migrated_costs(target_url: str) -> tuple[list[Decimal], Decimal | None]:
    """Every recorded AI cost in the log, and the total `livedash costs` reports."""
    from projections.analytics_queries import Period, costs

    with runtime(target_url) as rt:
        rt.runner.catch_up()
        stored = rt.app.recorder.select_notifications(
            start=0, limit=1_000_000, topics=[Session.AIUsageRecorded.TOPIC]
        )
        usages = [rt.app.mapper.to_domain_event(n) for n in stored]
        recorded = [u.usage.cost_eur for u in usages if u.usage.cost_eur is not None]
        with rt.engine.connect() as conn:
            total = costs(conn, "day", Period.of(None, None)).total_cost_eur
    return recorded, total


def load(target_url: str, company: str, external_id: str) -> tuple[Session, list[Any]]:
    sid = session_id_for(company_id_for(company), external_id)
    with runtime(target_url) as rt:
        return rt.app.get_session(sid), rt.app.session_events(sid)


def names(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


# ---------------------------------------------------------------------- the seed tenant


@pytest.mark.parametrize("variant", ["pre-refactor", "refactored"])
def test_seed_tenant_of_109_sessions_counts_exactly(database_url: str, variant: Variant) -> None:
    with legacy_db(variant) as (url, db):
        acme = db.company("Acme")
        fill_seed_109(db, acme, status_rows=variant == "refactored")
        report = migrate(url, database_url)
        assert report.variant == variant
        assert report.stages == full(SEED_109)
        assert report.final_status == [
            "CSV_IMPORT: 109 completed, 0 pending, 0 skipped, 0 failed",
            "TRANSCRIPT_FETCH: 109 completed, 0 pending, 0 skipped, 0 failed",
            "SESSION_CREATION: 109 completed, 0 pending, 0 skipped, 0 failed",
            "AI_ANALYSIS: 16 completed, 93 pending, 0 skipped, 0 failed",
            "QUESTION_EXTRACTION: 11 completed, 98 pending, 0 skipped, 0 failed",
        ]
        assert report.sessions.migrated == 109
        assert report.sessions.problems == 0
        assert report.companies["migrated"] == 1
        assert (
            "set a credential reference for company Acme: the legacy password was not copied"
            in report.warnings
        )
        # What `livedash status` reads is what the migration reported.
        assert projected(database_url) == report.stages
        # The costs total is the exact Decimal sum of the migrated usage, on either database.
        recorded, total = migrated_costs(database_url)
        assert recorded and total == sum(recorded, Decimal(0))
        events = event_count(database_url)

        again = migrate(url, database_url)
        assert event_count(database_url) == events
        assert again.sessions.migrated == 0
        assert again.sessions.already_migrated == 109
        assert again.companies["already_present"] == 1
        assert again.stages == report.stages


# ------------------------------------------------------------------ varied histories


def _fill_varied(db: Legacy) -> dict[str, Any]:
    """Nine sessions over two companies, covering the legacy states (see the expectations)."""
    acme = db.company("Acme")
    beta = db.company("Beta", status="TRIAL", username=None, password=None)
    info: dict[str, Any] = {}

    def full_session(company: str, ext: str, start: datetime, url: bool = True) -> str:
        msgs = chat(start)
        link = f"https://legacy.example/t/{ext}.txt" if url else None
        iid = db.import_(company, ext, start, url=link, transcript=transcript_for(msgs))
        sid = db.session(company, iid, start, fullTranscriptUrl=link)
        db.messages(sid, msgs, created=start + timedelta(hours=2))
        info[ext] = {"import": iid, "session": sid, "start": start}
        return sid

    created = T0 + timedelta(hours=2)

    # 1. done: everything COMPLETED, with two AI requests (one failed call, one paid answer)
    sid = full_session(acme, "done", T0)
    db.analyse(sid)
    db.link_questions(sid, ["How do I report sick leave?", "Who do I call?"], T0)
    ai_start = T0 + timedelta(hours=3)
    db.ai_request(sid, ai_start, success=False, error="Unexpected token in JSON")
    db.ai_request(sid, ai_start + timedelta(seconds=10), completed=ai_start + timedelta(seconds=14))
    times = {
        "TRANSCRIPT_FETCH": (created, created + timedelta(seconds=1)),
        "SESSION_CREATION": (created + timedelta(seconds=1), created + timedelta(seconds=2)),
        "AI_ANALYSIS": (ai_start, ai_start + timedelta(seconds=15)),
        "QUESTION_EXTRACTION": (
            ai_start + timedelta(seconds=15),
            ai_start + timedelta(seconds=16),
        ),
    }
    db.status(sid, "CSV_IMPORT", "COMPLETED", None, created)
    for stage, (a, b) in times.items():
        meta = {"questionsCount": 2} if stage == "AI_ANALYSIS" else None
        db.status(sid, stage, "COMPLETED", a, b, metadata=meta)
    info["done"]["times"] = times
    info["done"]["ai_start"] = ai_start

    # 2. transcript fetch failed twice (HTTP 404)
    start = T0 + timedelta(hours=1)
    iid = db.import_(acme, "fetch-failed", start, url="https://legacy.example/t/gone.txt")
    sid = db.session(acme, iid, start, fullTranscriptUrl="https://legacy.example/t/gone.txt")
    failed_at = start + timedelta(hours=2)
    db.status(sid, "CSV_IMPORT", "COMPLETED", failed_at, failed_at)
    db.status(sid, "TRANSCRIPT_FETCH", "FAILED", failed_at, failed_at, "HTTP 404 Not Found", 2)
    for stage in ("SESSION_CREATION", "AI_ANALYSIS", "QUESTION_EXTRACTION"):
        db.status(sid, stage, "PENDING")
    info["fetch-failed"] = {"session": sid, "failed_at": failed_at}

    # 3. AI analysis stuck IN_PROGRESS when the old system stopped
    start = T0 + timedelta(hours=2)
    sid = full_session(acme, "ai-interrupted", start)
    for stage in ("CSV_IMPORT", "TRANSCRIPT_FETCH", "SESSION_CREATION"):
        db.status(sid, stage, "COMPLETED", start, start)
    db.status(sid, "AI_ANALYSIS", "IN_PROGRESS", start + timedelta(hours=4))
    db.status(sid, "QUESTION_EXTRACTION", "PENDING")

    # 4. no transcript URL at all: fetch and creation SKIPPED by the old migration script
    start = T0 + timedelta(hours=3)
    iid = db.import_(acme, "no-url", start)
    sid = db.session(acme, iid, start)
    db.status(sid, "CSV_IMPORT", "COMPLETED", start, start)
    db.status(
        sid, "TRANSCRIPT_FETCH", "SKIPPED", start, start, "No transcript URL in original import"
    )
    db.status(sid, "SESSION_CREATION", "SKIPPED", start, start, "No transcript content available")
    db.status(sid, "AI_ANALYSIS", "PENDING")
    db.status(sid, "QUESTION_EXTRACTION", "PENDING")

    # 5. no status rows at all: the decision table decides
    sid = full_session(acme, "no-status-rows", T0 + timedelta(hours=4))
    db.analyse(sid, updated=T0 + timedelta(hours=9))

    # 6. analysed, but the summary is too short for our schema
    start = T0 + timedelta(hours=5)
    sid = full_session(acme, "bad-summary", start)
    db.analyse(sid, summary="ok")
    for stage in ("CSV_IMPORT", "TRANSCRIPT_FETCH", "SESSION_CREATION", "AI_ANALYSIS"):
        db.status(sid, stage, "COMPLETED", start, start)
    db.status(sid, "QUESTION_EXTRACTION", "PENDING")

    # 7. the original's question crash: AI FAILED after a paid answer, questions IN_PROGRESS
    start = T0 + timedelta(hours=6)
    sid = full_session(acme, "question-crash", start)
    db.analyse(sid)
    db.ai_request(sid, start + timedelta(hours=3))
    for stage in ("CSV_IMPORT", "TRANSCRIPT_FETCH", "SESSION_CREATION"):
        db.status(sid, stage, "COMPLETED", start, start)
    crash = start + timedelta(hours=3, seconds=5)
    db.status(sid, "AI_ANALYSIS", "FAILED", crash, crash, "duplicate key value violates unique", 1)
    db.status(sid, "QUESTION_EXTRACTION", "IN_PROGRESS", crash)

    # 8. an import that never became a session
    db.import_(acme, "orphan", T0 + timedelta(hours=7), url="https://legacy.example/t/o.txt")

    # 9. a TRIAL company's session without status rows, not analysed
    full_session(beta, "beta-1", T0 + timedelta(hours=8))
    return info


VARIED = {
    "CSV_IMPORT": {"COMPLETED": 9},
    "TRANSCRIPT_FETCH": {"COMPLETED": 6, "FAILED": 1, "SKIPPED": 1, "PENDING": 1},
    "SESSION_CREATION": {"COMPLETED": 6, "PENDING": 2, "SKIPPED": 1},
    "AI_ANALYSIS": {"COMPLETED": 3, "FAILED": 2, "PENDING": 4},
    "QUESTION_EXTRACTION": {"COMPLETED": 1, "PENDING": 8},
}


def test_varied_legacy_states_and_complete_histories(database_url: str) -> None:
    with legacy_db("refactored") as (url, db):
        info = _fill_varied(db)
        report = migrate(url, database_url, batch_size=4)
        assert report.stages == full(VARIED)
        assert projected(database_url) == report.stages
        assert report.sessions.total == 9
        assert report.sessions.migrated == 9
        assert report.companies["migrated"] == 2
        details = {d["name"]: d for d in report.companies["details"]}
        assert details["Beta"]["status"] == "TRIAL"
        warnings = "\n".join(report.warnings)
        assert "set a credential reference for company Acme" in warnings
        assert "credential reference for company Beta" not in warnings  # it had no password
        assert "company Beta is TRIAL" in warnings
        assert "1 session(s) had AI_ANALYSIS IN_PROGRESS" in warnings
        assert "1 session(s) had TRANSCRIPT_FETCH FAILED" in warnings
        assert "1 session(s) had AI_ANALYSIS FAILED" in warnings
        assert "1 session(s) had SESSION_CREATION SKIPPED" in warnings
        assert report.problem_kinds.get("analysis") == 1
        assert report.problem_kinds.get("stage_order") == 1

        _check_done(database_url, info["done"], db)
        _check_fetch_failed(database_url, info["fetch-failed"])
        _check_interrupted(database_url)
        _check_others(database_url)

        events = event_count(database_url)
        again = migrate(url, database_url)
        assert event_count(database_url) == events
        assert again.sessions.already_migrated == 9
        assert again.sessions.migrated == 0
        assert again.stages == report.stages


def _check_done(target: str, info: dict[str, Any], db: Legacy) -> None:
    session, events = load(target, "Acme", "done")
    assert names(events) == [
        "Imported",
        "StageStarted",
        "TranscriptFetched",
        "StageCompleted",
        "StageStarted",
        "SessionParsed",
        "StageCompleted",
        "StageStarted",
        "AIUsageRecorded",
        "AIUsageRecorded",
        "AnalysisRecorded",
        "StageCompleted",
        "StageStarted",
        "QuestionsExtracted",
        "StageCompleted",
    ]
    # Every event says it was migrated and names the legacy rows.
    for e in events:
        assert e.origin["migrated_from"] == "livedash-node"
        assert e.origin["legacy_session_id"] == info["session"]
        assert e.origin["legacy_import_id"] == info["import"]
        assert e.origin["legacy_company_id"]
        assert "problems" not in e.origin
    # Timestamps are the legacy ones.
    created_import = db.conn.execute(
        'SELECT "createdAt" FROM "SessionImport" WHERE "id" = %s', (info["import"],)
    ).fetchone()
    assert created_import is not None
    assert events[0].timestamp == created_import[0]
    times = info["times"]
    started = [e for e in events if type(e).__name__ == "StageStarted"]
    completed = [e for e in events if type(e).__name__ == "StageCompleted"]
    for stage, s, c in zip(
        ("TRANSCRIPT_FETCH", "SESSION_CREATION", "AI_ANALYSIS", "QUESTION_EXTRACTION"),
        started,
        completed,
        strict=True,
    ):
        assert s.stage.value == stage == c.stage.value
        assert s.worker == "legacy-migration"
        assert (s.timestamp, c.timestamp) == times[stage]
        assert c.metadata["migrated"] is True
    assert completed[2].metadata["legacy_metadata"] == {"questionsCount": 2}
    # The data came along.
    assert session.transcript is not None
    assert session.transcript.text.startswith("[20.06.2025 09:00:00] User:")
    assert [m.content for m in session.messages][:2] == [
        "Vraag 1: hoe meld ik me ziek?",
        "Bel je manager.",
    ]
    assert [m.role for m in session.messages] == ["user", "assistant", "user", "assistant"]
    assert session.messages[0].timestamp == info["start"]
    assert session.fields is not None and session.fields.country == "NL"
    assert session.fields.language == "nl" and session.fields.message_count == 4
    assert session.analysis is not None
    assert session.analysis.sentiment.value == "NEUTRAL"
    assert session.analysis.category.value == "SICK_LEAVE_RECOVERY"
    assert session.analysis.summary == "User asked how to report sick leave."
    assert session.analysis_model == "gpt-4o-2024-08-06"
    assert session.questions == ["How do I report sick leave?", "Who do I call?"]
    usages = [u for _, _, u in session.ai_usage]
    assert [u.total_tokens for u in usages] == [0, 1200]
    paid = usages[1]
    assert paid.provider == "openai" and paid.price_source == "legacy"
    assert paid.model_requested == paid.model_returned == "gpt-4o-2024-08-06"
    assert paid.cost_eur == Decimal("0.00382")
    assert paid.cost_usd == Decimal("0.0045")  # 1000 × 2.5e-6 + 200 × 1e-5
    assert paid.received_at == info["ai_start"] + timedelta(seconds=14)
    usage_events = [e for e in events if type(e).__name__ == "AIUsageRecorded"]
    assert all("legacy_ai_request_id" in e.origin for e in usage_events)
    assert all(session.stages[s].status is Status.COMPLETED for s in STAGE_ORDER)


def _check_fetch_failed(target: str, info: dict[str, Any]) -> None:
    session, events = load(target, "Acme", "fetch-failed")
    assert names(events) == [
        "Imported",
        "StageStarted",
        "StageFailed",
        "StageStarted",
        "StageFailed",
    ]
    fetch = session.stages[Stage.TRANSCRIPT_FETCH]
    assert fetch.status is Status.FAILED
    assert fetch.retry_count == 2
    assert fetch.error_message == "HTTP 404 Not Found"
    assert fetch.retry_at is None  # dead: legacy failures wait for an operator's retry
    assert events[-1].timestamp == info["failed_at"]
    assert events[2].retryable is True and events[-1].retryable is False


def _check_interrupted(target: str) -> None:
    session, events = load(target, "Acme", "ai-interrupted")
    ai = session.stages[Stage.AI_ANALYSIS]
    assert ai.status is Status.FAILED
    assert ai.error_type == "interrupted"
    assert ai.error_message is not None
    assert ai.error_message.startswith("interrupted before migration")
    assert ai.retryable is True and ai.retry_at == NOW
    assert session.is_due(Stage.AI_ANALYSIS, NOW)
    assert names(events)[-2:] == ["StageStarted", "StageFailed"]
    assert events[-2].timestamp == T0 + timedelta(hours=6)  # the legacy startedAt


def _check_others(target: str) -> None:
    no_url, _ = load(target, "Acme", "no-url")
    assert no_url.stages[Stage.TRANSCRIPT_FETCH].status is Status.SKIPPED
    assert no_url.stages[Stage.TRANSCRIPT_FETCH].note == "No transcript URL in original import"
    assert no_url.stages[Stage.SESSION_CREATION].status is Status.SKIPPED

    table, _ = load(target, "Acme", "no-status-rows")
    assert [table.stages[s].status for s in STAGE_ORDER] == [
        Status.COMPLETED,
        Status.COMPLETED,
        Status.COMPLETED,
        Status.COMPLETED,
        Status.PENDING,
    ]
    assert table.analysis is not None

    bad, events = load(target, "Acme", "bad-summary")
    ai = bad.stages[Stage.AI_ANALYSIS]
    assert ai.status is Status.COMPLETED
    assert bad.analysis is None and "AnalysisRecorded" not in names(events)
    assert ai.metadata["legacy_analysis"]["summary"] == "ok"
    assert "summary" in ai.metadata["analysis_invalid"]
    assert any(p.startswith("analysis:") for p in events[0].origin["problems"])

    crash, events = load(target, "Acme", "question-crash")
    assert crash.stages[Stage.AI_ANALYSIS].status is Status.FAILED
    assert crash.stages[Stage.AI_ANALYSIS].error_message == "duplicate key value violates unique"
    assert crash.stages[Stage.QUESTION_EXTRACTION].status is Status.PENDING
    assert len(crash.ai_usage) == 1  # the paid answer stays in the cost history
    assert any("QUESTION_EXTRACTION was IN_PROGRESS" in p for p in events[0].origin["problems"])

    orphan, events = load(target, "Acme", "orphan")
    assert names(events) == ["Imported"]
    assert events[0].origin["legacy_session_id"] is None
    assert [orphan.stages[s].status for s in STAGE_ORDER] == [Status.COMPLETED] + [
        Status.PENDING
    ] * 4

    beta, _ = load(target, "Beta", "beta-1")
    assert beta.stages[Stage.SESSION_CREATION].status is Status.COMPLETED
    assert beta.stages[Stage.AI_ANALYSIS].status is Status.PENDING


# ------------------------------------------------------------------------- bad data


def test_bad_legacy_data_migrates_with_the_problems_recorded(sqlite_url: str) -> None:
    with legacy_db("pre-refactor", strict=False) as (url, db):
        acme = db.company("Acme")
        start = T0
        # Unparseable raw dates: the legacy Session's own times stand in.
        iid = db.import_(
            acme, "bad-dates", start, start_raw="31.02.2025 10:00:00", end_raw="2025-06-20"
        )
        db.session(acme, iid, start, minutes=7)
        # An orphan with no usable date at all: the import's createdAt stands in.
        db.import_(acme, "bad-dates-orphan", start, start_raw="", end_raw="soon")
        # Messages without timestamps and odd roles.
        msgs = [
            (start, "User", "Hallo?"),
            (None, "Bot", "Hoi!"),
            (None, "unknown", "(system notice)"),
            (start + timedelta(seconds=9), "user", "Bedankt"),
        ]
        iid = db.import_(acme, "untimed", start, url="https://x.example/u", transcript="x")
        sid = db.session(acme, iid, start)
        db.messages(sid, msgs)
        # A question linked twice, and two spellings of one question.
        iid = db.import_(acme, "linked-twice", start, url="https://x.example/q", transcript="x")
        sid = db.session(acme, iid, start)
        db.messages(sid, chat(start))
        db.analyse(sid)
        db.link_questions(
            sid, ["How do I report sick leave?", "Who do I call?", " who do I  call? "]
        )
        qid = db.question("How do I report sick leave?")
        db.conn.execute(
            'INSERT INTO "SessionQuestion" ("id", "sessionId", "questionId", "order", "createdAt") '
            "VALUES (%s, %s, %s, 3, %s)",
            ("dup-link", sid, qid, T0.replace(tzinfo=None)),
        )
        # A country name where a code belongs, and a negative count.
        iid = db.import_(acme, "country", start, countryCode="USA", tokens=-5)
        db.session(acme, iid, start, country="USA")
        # The old import status: ERROR on an orphan, PROCESSING on a created session.
        db.import_(
            acme,
            "import-error",
            start,
            url="https://x.example/e",
            status="ERROR",
            errorMsg="Invalid time value",
            processedAt=start + timedelta(hours=5),
        )
        iid = db.import_(
            acme,
            "import-processing",
            start,
            url="https://x.example/p",
            transcript=transcript_for(chat(start)),
            status="PROCESSING",
        )
        db.session(acme, iid, start, processed=False)

        report = migrate(url, sqlite_url)
        assert report.sessions.total == 7
        assert report.sessions.migrated == 7  # nothing aborted, nothing dropped
        assert report.sessions.not_migrated == 0
        kinds = report.problem_kinds
        for kind in ("startTime", "endTime", "messages", "questions", "country", "tokens"):
            assert kinds.get(kind), (kind, kinds)
        examples = {e.external_id: e.problems for e in report.problem_examples}

        s, events = load(sqlite_url, "Acme", "bad-dates")
        assert s.row.start_time == start and s.row.end_time == start + timedelta(minutes=7)
        assert any("31.02.2025" in p for p in events[0].origin["problems"])
        assert examples["bad-dates"] == events[0].origin["problems"]

        s, events = load(sqlite_url, "Acme", "bad-dates-orphan")
        assert s.row.start_time == events[0].timestamp  # the import's createdAt

        s, _ = load(sqlite_url, "Acme", "untimed")
        assert [m.timestamp is None for m in s.messages] == [False, True, True, False]
        assert [m.role for m in s.messages] == ["user", "assistant", "other", "user"]
        assert [m.speaker for m in s.messages] == ["User", "Bot", "unknown", "user"]
        assert any("2 of 4 have no timestamp" in p for p in examples["untimed"])

        s, _ = load(sqlite_url, "Acme", "linked-twice")
        assert s.questions == ["How do I report sick leave?", "Who do I call?"]
        assert any("linked twice" in p for p in examples["linked-twice"])
        assert s.stages[Stage.QUESTION_EXTRACTION].status is Status.COMPLETED

        s, _ = load(sqlite_url, "Acme", "country")
        assert s.row.country == "USA" and s.row.tokens is None
        assert any("'USA'" in p and "US" in p for p in examples["country"])

        s, _ = load(sqlite_url, "Acme", "import-error")
        fetch = s.stages[Stage.TRANSCRIPT_FETCH]
        assert fetch.status is Status.FAILED and fetch.error_message == "Invalid time value"
        assert fetch.completed_at == start + timedelta(hours=5)

        s, _ = load(sqlite_url, "Acme", "import-processing")
        creation = s.stages[Stage.SESSION_CREATION]
        assert s.stages[Stage.TRANSCRIPT_FETCH].status is Status.COMPLETED
        assert creation.status is Status.FAILED and creation.error_type == "interrupted"
        assert creation.retry_at == NOW


# ---------------------------------------------------------------- resume, dry run, errors


def test_an_interrupted_migration_resumes(pg_url: str) -> None:
    with legacy_db("refactored") as (url, db):
        acme = db.company("Acme")
        fill_seed_109(db, acme, status_rows=True)

        class Stop(Exception):
            pass

        def stop_after_first(number: int) -> None:
            if number == 1:
                raise Stop

        with pytest.raises(Stop):
            migrate(url, pg_url, batch_size=40, after_batch=stop_after_first)
        resumed = migrate(url, pg_url, batch_size=40)
        assert resumed.sessions.already_migrated == 40
        assert resumed.sessions.migrated == 69
        assert resumed.companies["already_present"] == 1
        assert resumed.stages == full(SEED_109)
        assert projected(pg_url) == full(SEED_109)
        with runtime(pg_url) as rt, rt.engine.connect() as conn:
            imported = conn.exec_driver_sql(
                "SELECT count(*) FROM livedash_events WHERE topic = 'livedash:Session.Imported'"
            ).scalar()
        assert imported == 109


def test_worker_processes_migrate_the_same(pg_url: str) -> None:
    with legacy_db("refactored") as (url, db):
        acme = db.company("Acme")
        fill_seed_109(db, acme, status_rows=True)
        report = migrate(url, pg_url, batch_size=10, workers=2, database_url=pg_url)
        assert report.workers == 2
        assert report.sessions.migrated == 109
        assert report.sessions.events == event_count(pg_url) - 1  # all but the company's
        assert report.stages == full(SEED_109)
        assert projected(pg_url) == full(SEED_109)
        again = migrate(url, pg_url, batch_size=10, workers=2, database_url=pg_url)
        assert again.sessions.already_migrated == 109 and again.sessions.events == 0


def test_dry_run_writes_nothing(sqlite_url: str, tmp_path: Path) -> None:
    with legacy_db("refactored") as (url, db):
        acme = db.company("Acme")
        fill_seed_109(db, acme, status_rows=True)
        beta = db.company("Beta")
        db.import_(beta, "b-1", T0)
        # Into a store that does not exist yet: it is not created.
        missing = tmp_path / "never.db"
        result = _cli(f"sqlite:///{missing}", tmp_path, "--from", url, "--dry-run", "--json")
        report = json.loads(result.stdout)
        assert report["dry_run"] is True
        assert report["sessions"]["migrated"] == 110
        assert not missing.exists()
        # Into a store holding one company already: it stays as it was.
        migrate(url, sqlite_url, company="beta")
        before = event_count(sqlite_url)
        with runtime(sqlite_url) as rt:
            dry = migrate_legacy(
                url, rt.app, rt.runner, lambda: NOW, MigrationOptions(dry_run=True)
            )
        assert event_count(sqlite_url) == before
        assert dry.sessions.migrated == 109 and dry.sessions.already_migrated == 1
        assert dry.companies["migrated"] == 1 and dry.companies["already_present"] == 1
        assert dry.stages["AI_ANALYSIS"]["COMPLETED"] == 16
        with pytest.raises(LegacyMigrationError, match="no legacy company named 'Gamma'"):
            migrate(url, sqlite_url, company="Gamma")


def test_a_database_that_is_neither_variant_is_refused(tmp_path: Path) -> None:
    with fresh_pg_database() as empty:
        result = _cli(f"sqlite:///{tmp_path / 'x.db'}", tmp_path, "--from", empty, check=False)
        assert result.returncode == 1
        assert "not a livedash-node database: missing" in result.stderr
        assert '"Company"' in result.stderr and '"SessionImport"' in result.stderr
        assert "Traceback" not in result.stderr
    with legacy_db("pre-refactor") as (url, _db):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute('ALTER TABLE "SessionImport" DROP COLUMN "status"')
        with pytest.raises(LegacySchemaError) as err:
            migrate(url, f"sqlite:///{tmp_path / 'y.db'}")
        assert '"SessionProcessingStatus"' in str(err.value)
        assert '"SessionImport"."status"' in str(err.value)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute('ALTER TABLE "Session" DROP COLUMN "summary"')
        with pytest.raises(LegacySchemaError, match=r'missing "Session"\."summary"'):
            migrate(url, f"sqlite:///{tmp_path / 'y.db'}")


def _cli(database_url: str, cwd: Path, *args: str, check: bool = True) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
    env["PYTHONPATH"] = str(REPO)
    run = Livedash(database_url, cwd, env)
    result = run("migrate-legacy", *args, check=check)

    class R:
        returncode = result.code
        stdout = result.stdout
        stderr = result.stderr

    return R


# ------------------------------------------------------ the CLI, then the daemon finishes


def test_cli_migration_then_the_daemon_finishes_the_work(
    livedash: Livedash, tmp_path: Path
) -> None:
    with legacy_db("pre-refactor") as (url, db):
        csv = tmp_path / "legacy" / "export.csv"
        csv.parent.mkdir()
        acme = db.company("Acme", csv_url=str(csv))
        for i in range(3):  # created with messages, never analysed
            start = T0 + timedelta(hours=i)
            iid = db.import_(
                acme,
                f"created-{i}",
                start,
                url=f"t/{i}.txt",
                transcript=transcript_for(chat(start)),
                status="DONE",
            )
            db.messages(db.session(acme, iid, start), chat(start))
        for i in range(2):  # imports with their transcript text that never became sessions
            start = T0 + timedelta(hours=10 + i)
            db.import_(
                acme,
                f"orphan-{i}",
                start,
                url=f"t/o{i}.txt",
                transcript=transcript_for(chat(start)),
                status="QUEUED",
            )
        for i in range(2):  # imports whose transcript was never fetched: the file is missing
            db.import_(acme, f"unfetched-{i}", T0, url=f"transcripts/missing-{i}.txt")
        start = T0 + timedelta(hours=20)  # interrupted while being created
        iid = db.import_(
            acme,
            "processing",
            start,
            url="t/p.txt",
            transcript=transcript_for(chat(start)),
            status="PROCESSING",
        )
        db.session(acme, iid, start)
        start = T0 + timedelta(hours=21)  # analysed and done
        iid = db.import_(
            acme,
            "analysed",
            start,
            url="t/a.txt",
            transcript=transcript_for(chat(start)),
            status="DONE",
        )
        sid = db.session(acme, iid, start, processed=True)
        db.messages(sid, chat(start))
        db.analyse(sid)
        db.link_questions(sid, ["Who do I call?"])

        result = livedash("migrate-legacy", "--from", url, "--json")
        report = json.loads(result.stdout)
        assert report["variant"] == "pre-refactor"
        assert report["sessions"]["migrated"] == 9
        assert report["stages"] == full(
            {
                "CSV_IMPORT": {"COMPLETED": 9},
                "TRANSCRIPT_FETCH": {"COMPLETED": 7, "PENDING": 2},
                "SESSION_CREATION": {"COMPLETED": 4, "PENDING": 4, "FAILED": 1},
                "AI_ANALYSIS": {"COMPLETED": 1, "PENDING": 8},
                "QUESTION_EXTRACTION": {"COMPLETED": 1, "PENDING": 8},
            }
        )
        status = json.loads(livedash("status", "--json").stdout)
        assert status["stages"] == report["stages"]
        text = livedash("migrate-legacy", "--from", url).stdout
        assert "=== MIGRATION COMPLETE - FINAL STATUS ===" in text
        assert "AI_ANALYSIS: 1 completed, 8 pending, 0 skipped, 0 failed" in text
        assert "9 already migrated" in text

        livedash(
            "run",
            "--until-idle",
            "--idle-horizon",
            "0",
            "--csv-interval",
            "0",
            "--poll-interval",
            "0.1",
            timeout=60,
        )
        after = json.loads(livedash("status", "--json").stdout)["stages"]
        assert after == full(
            {
                "CSV_IMPORT": {"COMPLETED": 9},
                "TRANSCRIPT_FETCH": {"COMPLETED": 7, "FAILED": 2},
                "SESSION_CREATION": {"COMPLETED": 7, "PENDING": 2},
                "AI_ANALYSIS": {"COMPLETED": 7, "PENDING": 2},
                "QUESTION_EXTRACTION": {"COMPLETED": 7, "PENDING": 2},
            }
        )
        failed = json.loads(livedash("failed", "--json").stdout)
        assert sorted(f["external_id"] for f in failed) == ["unfetched-0", "unfetched-1"]
        assert {f["error_type"] for f in failed} == {"not_found"}
        history = json.loads(livedash("history", "processing", "--json").stdout)["events"]
        creation = [e for e in history if e["stage"] == "SESSION_CREATION"]
        assert [(e["event"], e["error_type"]) for e in creation] == [
            ("StageStarted", None),
            ("StageFailed", "interrupted"),
            ("StageStarted", None),
            ("SessionParsed", None),
            ("StageCompleted", None),
        ]
        assert creation[0]["worker"] == "legacy-migration"
        assert creation[2]["worker"] != "legacy-migration"
        # The import's createdAt (an hour after its start, T0 + 20 h).
        assert datetime.fromisoformat(history[0]["timestamp"]) == T0 + timedelta(hours=21)


# ------------------------------------------------------- decisions without a database


def _unit(statuses: dict[str, tuple[str, int]], requests: int = 0) -> Any:
    from processors.legacy.records import (
        LegacyAIRequest,
        LegacyCompany,
        LegacyImport,
        LegacyMessage,
        LegacySession,
        LegacyStatus,
        LegacyUnit,
    )

    created = T0 + timedelta(hours=1)
    company = LegacyCompany("c-1", "Acme", "https://x.example/e.csv", None, False, None, T0)
    imp = LegacyImport(
        "i-1", "c-1", "ext-1", "20.06.2025 09:00:00", "20.06.2025 09:05:00", None, "NL",
        None, None, None, None, None, "https://x.example/t.txt", None, None, None, None, None,
        "[20.06.2025 09:00:00] User: hoi", created,
    )  # fmt: skip
    session = LegacySession(
        "s-1", "c-1", "i-1", T0, T0 + timedelta(minutes=5), None, "NL", None, None, None,
        None, None, None, None, None, None, None, created, created,
    )  # fmt: skip
    at = T0 + timedelta(hours=2)
    rows = {
        stage: LegacyStatus(stage, status, at, at, "boom" if retries else None, retries, None)
        for stage, (status, retries) in statuses.items()
    }
    reqs = [
        LegacyAIRequest(
            f"r-{i}",
            None,
            "gpt-4o",
            10,
            5,
            15,
            None,
            None,
            2.5e-6,
            1e-5,
            0.0001,
            True,
            None,
            at + timedelta(minutes=i),
            at + timedelta(minutes=i, seconds=3),
        )
        for i in range(requests)
    ]
    messages = [LegacyMessage(T0, "user", "hoi", 0, created)]
    return LegacyUnit(company, imp, session, messages, [], reqs, rows)


def _build(unit: Any) -> tuple[Session, Any]:
    from processors.legacy.build import build_session
    from processors.legacy.prepare import prepare

    p = prepare(unit, "UTC")
    return build_session(p, company_id_for("Acme"), "UTC", NOW), p


DONE_BEFORE_AI = {
    "CSV_IMPORT": ("COMPLETED", 0),
    "TRANSCRIPT_FETCH": ("COMPLETED", 0),
    "SESSION_CREATION": ("COMPLETED", 0),
}


def test_a_pending_stage_keeps_its_legacy_failures_and_paid_calls() -> None:
    unit = _unit({**DONE_BEFORE_AI, "AI_ANALYSIS": ("PENDING", 2)}, requests=2)
    session, p = _build(unit)
    ai = session.stages[Stage.AI_ANALYSIS]
    assert ai.status is Status.PENDING
    assert ai.attempt == 3  # two retold failures, one attempt holding the paid calls
    assert len(session.ai_usage) == 2
    assert session.stages[Stage.QUESTION_EXTRACTION].status is Status.PENDING
    events = [type(e).__name__ for e in session.collect_events()]
    assert events[-9:] == [
        "StageStarted",
        "StageFailed",
        "StageStarted",
        "StageFailed",
        "StageStarted",
        "AIUsageRecorded",
        "AIUsageRecorded",
        "StageFailed",
        "StageReset",
    ]
    assert not p.problems


def test_retry_counts_are_capped_and_bad_times_reported() -> None:
    unit = _unit({**DONE_BEFORE_AI, "AI_ANALYSIS": ("FAILED", 50)})
    unit.statuses["SESSION_CREATION"].completed_at = T0  # before its startedAt
    session, p = _build(unit)
    ai = session.stages[Stage.AI_ANALYSIS]
    assert ai.status is Status.FAILED and ai.retry_at is None
    assert ai.retry_count == 10 and ai.error_message == "boom"
    assert any("retryCount 50" in x for x in p.problems)
    assert any(x.startswith("session_creation: completedAt") for x in p.problems)
    creation = session.stages[Stage.SESSION_CREATION]
    assert creation.completed_at == creation.started_at == T0 + timedelta(hours=2)


def test_usage_of_a_stage_that_can_never_start_is_reported_not_invented() -> None:
    unit = _unit(
        {
            "CSV_IMPORT": ("COMPLETED", 0),
            "TRANSCRIPT_FETCH": ("PENDING", 0),
            "SESSION_CREATION": ("PENDING", 0),
            "AI_ANALYSIS": ("PENDING", 0),
        },
        requests=1,
    )
    session, p = _build(unit)
    assert session.ai_usage == []
    assert any(x.startswith("ai_usage: 1 legacy AI request(s) not recorded") for x in p.problems)
    assert [session.stages[s].status for s in STAGE_ORDER][1:] == [Status.PENDING] * 4
