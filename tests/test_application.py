"""The application on a real event store: optimistic concurrency is the lock, batches are one
transaction, and the stored topics stay stable."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from domain.company import Company, CompanyStatus, CredentialRef
from domain.errors import CompanyError
from domain.session import Session
from domain.stages import Stage
from tests.factories import Clock, row
from tests.harness import runtime


def test_two_claims_of_one_stage_one_wins(database_url: str) -> None:
    clock = Clock()
    with runtime(database_url) as rt:
        s = Session.import_row(uuid4(), row(), "t.csv", clock())
        rt.app.save(s)
        a, b = rt.app.get_session(s.id), rt.app.get_session(s.id)
        lease = clock.now + timedelta(seconds=60)
        a.start_stage(Stage.TRANSCRIPT_FETCH, "w1", lease, clock())
        b.start_stage(Stage.TRANSCRIPT_FETCH, "w2", lease, clock())
        rt.app.save(a)
        with pytest.raises(IntegrityError):
            rt.app.save(b)
        assert rt.app.get_session(s.id).stages[Stage.TRANSCRIPT_FETCH].worker == "w1"


def test_a_batch_with_one_conflict_still_saves_the_winners(
    database_url: str,
) -> None:
    clock = Clock()
    with runtime(database_url) as rt:
        company = uuid4()
        sessions = [Session.import_row(company, row(f"s{i}"), "t.csv", clock()) for i in range(5)]
        rt.app.save_batch(sessions)
        loaded = rt.app.get_sessions([s.id for s in sessions])
        rival = rt.app.get_session(sessions[2].id)
        lease = clock.now + timedelta(seconds=60)
        for s in loaded:
            s.start_stage(Stage.TRANSCRIPT_FETCH, "batch", lease, clock())
        rival.start_stage(Stage.TRANSCRIPT_FETCH, "rival", lease, clock())
        rt.app.save(rival)
        result = rt.app.save_batch(loaded)
        assert [s.id for s in result.lost] == [rival.id]
        assert len(result.saved) == 4 and result.events == 4
        for s in loaded:
            stored = rt.app.get_session(s.id)
            assert stored.version == 2
            expected = "batch" if s.id != rival.id else "rival"
            assert stored.stages[Stage.TRANSCRIPT_FETCH].worker == expected
        assert len(rt.app.session_events(rival.id)) == 2  # the rival's claim only, not both


def test_company_register_credentials_are_references(database_url: str) -> None:
    clock = Clock()
    with runtime(database_url) as rt:
        ref = CredentialRef(kind="env", name="ACME_CSV_PASSWORD")
        c = Company.register(
            "Acme", "https://csv.example/x.csv", clock(), username="u", password_ref=ref
        )
        rt.app.register_company(c)
        with pytest.raises(CompanyError, match="already exists"):
            rt.app.register_company(Company.register("ACME", "x.csv", clock()))
        loaded = rt.app.get_company("acme")
        assert loaded.password_ref == ref and loaded.username == "u"
        rt.app.change_company_status("Acme", CompanyStatus.SUSPENDED, "unpaid", "ops", clock())
        assert rt.app.get_company("Acme").status is CompanyStatus.SUSPENDED
        stored = rt.app.recorder.select_events(c.id)
        assert all(b"secret" not in s.state for s in stored)


def test_event_topics_are_stable() -> None:
    """Renaming a class must not change what is stored: the topics are explicit."""
    assert get_topic(Session.Imported) == "livedash:Session.Imported"
    assert get_topic(Session.StageStarted) == "livedash:Session.StageStarted"
    assert get_topic(Session.StageCompleted) == "livedash:Session.StageCompleted"
    assert get_topic(Session.StageFailed) == "livedash:Session.StageFailed"
    assert get_topic(Session.StageSkipped) == "livedash:Session.StageSkipped"
    assert get_topic(Session.StageReset) == "livedash:Session.StageReset"
    assert get_topic(Session.SourceRowChanged) == "livedash:Session.SourceRowChanged"
    assert get_topic(Session.AIUsageRecorded) == "livedash:Session.AIUsageRecorded"
    assert get_topic(Session.TranscriptFetched) == "livedash:Session.TranscriptFetched"
    assert get_topic(Session.SessionParsed) == "livedash:Session.SessionParsed"
    assert get_topic(Session.AnalysisRecorded) == "livedash:Session.AnalysisRecorded"
    assert get_topic(Session.QuestionsExtracted) == "livedash:Session.QuestionsExtracted"
    assert get_topic(Company.Registered) == "livedash:Company.Registered"
    assert get_topic(Session) == "livedash:Session"


def test_event_timestamps_are_the_commands_now(database_url: str) -> None:
    clock = Clock()
    with runtime(database_url) as rt:
        s = Session.import_row(uuid4(), row(), "t.csv", clock())
        clock.advance(90)
        s.skip_stage(Stage.TRANSCRIPT_FETCH, "no url", clock())
        rt.app.save(s)
        events = rt.app.session_events(s.id)
        assert [e.timestamp for e in events] == [clock.now - timedelta(seconds=90), clock.now]


def test_migrated_events_carry_their_origin(database_url: str) -> None:
    clock = Clock()
    origin = {"migrated_from": "livedash-node", "legacy_session_id": "abc"}
    with runtime(database_url) as rt:
        s = Session.import_row(uuid4(), row(), "legacy", clock(), origin=origin)
        with s.recording_origin(origin):
            s.skip_stage(Stage.TRANSCRIPT_FETCH, "no url", clock())
        s.start_stage(Stage.SESSION_CREATION, "w", clock.now + timedelta(seconds=9), clock())
        rt.app.save(s)
        events = rt.app.session_events(s.id)
        assert [e.origin for e in events] == [origin, origin, None]
