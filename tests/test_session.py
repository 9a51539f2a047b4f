"""The Session aggregate: every illegal transition raises the right error, every legal one
yields the right state."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.errors import InvalidReset, StageAlreadyRunning, StageNotReady, StaleAttempt
from domain.payloads import AIRequestIntent, AIUsage
from domain.session import LEASE_EXPIRED, Session, session_id_for
from domain.stages import STAGE_ORDER, Stage, Status
from tests.factories import COMPANY, T0, Clock, row

FETCH = Stage.TRANSCRIPT_FETCH
CREATE = Stage.SESSION_CREATION
AI = Stage.AI_ANALYSIS
QE = Stage.QUESTION_EXTRACTION


def new_session(**changes: object) -> Session:
    return Session.import_row(COMPANY, row(**changes), "test.csv", T0)


def lease(clock: Clock, seconds: float = 60) -> object:
    return clock.now + timedelta(seconds=seconds)


def test_import_completes_csv_import_and_leaves_the_rest_pending() -> None:
    s = new_session()
    assert s.id == session_id_for(COMPANY, "s-1")
    assert s.stages[Stage.CSV_IMPORT].status is Status.COMPLETED
    assert [s.stages[st].status for st in STAGE_ORDER[1:]] == [Status.PENDING] * 4
    assert s.is_ready(FETCH) and not s.is_ready(CREATE)
    assert s.current_stage is FETCH


def test_same_row_same_id_in_another_company_another_id() -> None:
    assert session_id_for(COMPANY, "x") == session_id_for(COMPANY, "x")
    assert session_id_for(COMPANY, "x") != session_id_for(session_id_for(COMPANY, "y"), "x")


def test_start_complete_and_attempt_numbers() -> None:
    clock = Clock()
    s = new_session()
    attempt = s.start_stage(FETCH, "w1", lease(clock), clock())
    assert attempt == 1
    st = s.stages[FETCH]
    assert (st.status, st.worker, st.attempt) == (Status.IN_PROGRESS, "w1", 1)
    s.complete_stage(FETCH, 1, clock.advance(1), {"size": 10})
    assert s.stages[FETCH].status is Status.COMPLETED
    assert s.stages[FETCH].metadata == {"size": 10}
    assert s.is_ready(CREATE)


def test_cannot_start_a_stage_that_is_not_ready() -> None:
    clock = Clock()
    s = new_session()
    with pytest.raises(StageNotReady, match="TRANSCRIPT_FETCH is PENDING"):
        s.start_stage(CREATE, "w1", lease(clock), clock())
    with pytest.raises(StageNotReady, match="CSV_IMPORT"):
        s.start_stage(Stage.CSV_IMPORT, "w1", lease(clock), clock())


def test_cannot_start_twice_under_a_live_lease() -> None:
    clock = Clock()
    s = new_session()
    s.start_stage(FETCH, "w1", lease(clock, 60), clock())
    clock.advance(30)
    with pytest.raises(StageAlreadyRunning):
        s.start_stage(FETCH, "w2", lease(clock), clock())


def test_expired_lease_is_recorded_then_taken_over() -> None:
    clock = Clock()
    s = new_session()
    s.start_stage(FETCH, "w1", lease(clock, 60), clock())
    clock.advance(61)
    attempt = s.start_stage(FETCH, "w2", lease(clock), clock())
    assert attempt == 2
    kinds = [type(e).__name__ for e in s.pending_events]
    assert kinds[-2:] == ["StageFailed", "StageStarted"]
    failed = s.pending_events[-2]
    assert failed.error_type == LEASE_EXPIRED and failed.attempt == 1
    # the first worker comes back late: its attempt is no longer current
    with pytest.raises(StaleAttempt):
        s.complete_stage(FETCH, 1, clock(), {})
    assert s.stages[FETCH].retry_count == 1


def test_complete_or_fail_only_the_current_attempt() -> None:
    clock = Clock()
    s = new_session()
    with pytest.raises(StaleAttempt):
        s.complete_stage(FETCH, 1, clock(), {})
    s.start_stage(FETCH, "w1", lease(clock), clock())
    with pytest.raises(StaleAttempt):
        s.fail_stage(FETCH, 2, "http", "boom", True, clock(), clock())


def test_failure_with_retry_then_dead() -> None:
    clock = Clock()
    s = new_session()
    s.start_stage(FETCH, "w1", lease(clock), clock())
    retry_at = clock.now + timedelta(seconds=10)
    s.fail_stage(FETCH, 1, "http_503", "HTTP 503", True, retry_at, clock.advance(1))
    st = s.stages[FETCH]
    assert st.status is Status.FAILED and st.retry_at == retry_at and not st.is_dead
    assert not s.is_due(FETCH, clock())
    with pytest.raises(StageNotReady, match="scheduled to retry"):
        s.start_stage(FETCH, "w1", lease(clock), clock())
    clock.advance(10)
    assert s.is_due(FETCH, clock())
    assert s.start_stage(FETCH, "w1", lease(clock), clock()) == 2
    s.fail_stage(FETCH, 2, "http_404", "HTTP 404", False, clock(), clock())
    st = s.stages[FETCH]
    assert st.is_dead and st.retry_at is None and st.retry_count == 2
    with pytest.raises(StageNotReady, match="failed for good"):
        s.start_stage(FETCH, "w1", lease(clock), clock())


def test_skip_rules_and_skip_only_pending() -> None:
    clock = Clock()
    s = new_session(url=None)
    assert s.skip_reason(FETCH) == "no transcript URL in the CSV row"
    s.skip_stage(FETCH, "no transcript URL in the CSV row", clock())
    assert s.is_ready(CREATE)  # SKIPPED counts as done
    with pytest.raises(StageNotReady, match="only a PENDING"):
        s.skip_stage(FETCH, "again", clock())
    s.start_stage(CREATE, "w", lease(clock), clock())
    s.complete_stage(CREATE, 1, clock(), {})
    assert s.skip_reason(AI) == "no transcript messages"
    s.skip_stage(AI, "no transcript messages", clock())
    assert s.skip_reason(QE) == "analysis was skipped"


def test_reset_rules() -> None:
    clock = Clock()
    s = new_session()
    with pytest.raises(InvalidReset, match="PENDING"):
        s.reset_stage(FETCH, "r", "op", clock())
    s.start_stage(FETCH, "w", lease(clock), clock())
    with pytest.raises(InvalidReset, match="IN_PROGRESS"):
        s.reset_stage(FETCH, "r", "op", clock())
    s.complete_stage(FETCH, 1, clock(), {})
    with pytest.raises(InvalidReset, match="use force"):
        s.reset_stage(FETCH, "r", "op", clock())
    s.start_stage(CREATE, "w", lease(clock), clock())
    s.fail_stage(CREATE, 1, "parse", "line 3: bad", False, None, clock())
    s.reset_stage(CREATE, "fixed parser", "alice", clock.advance(5))
    assert s.stages[CREATE].status is Status.PENDING
    assert s.stages[CREATE].retry_count == 0
    assert s.stages[CREATE].attempt == 1  # attempt numbers are never reused
    event = s.pending_events[-1]
    assert (event.reason, event.actor, event.force) == ("fixed parser", "alice", False)


def test_forced_reset_of_completed_resets_every_later_stage() -> None:
    clock = Clock()
    s = new_session()
    for stage in (FETCH, CREATE):
        s.start_stage(stage, "w", lease(clock), clock())
        s.complete_stage(stage, 1, clock(), {})
    s.reset_stage(FETCH, "refetch", "bob", clock(), force=True)
    assert [s.stages[x].status for x in STAGE_ORDER] == [Status.COMPLETED] + [Status.PENDING] * 4
    assert s.stages[CREATE].note == "reset: refetch"


def test_changed_row_reopens_later_stages_and_identical_row_is_a_no_op() -> None:
    clock = Clock()
    s = new_session()
    s.start_stage(FETCH, "w", lease(clock), clock())
    s.complete_stage(FETCH, 1, clock(), {})
    n = len(s.pending_events)
    assert s.change_row(row(), "again.csv", clock()) is False
    assert len(s.pending_events) == n
    assert s.change_row(row(messages_sent=5), "again.csv", clock.advance(60)) is True
    assert s.stages[FETCH].status is Status.PENDING
    assert s.stages[FETCH].note == "source row changed"
    assert s.row.messages_sent == 5


def test_lease_must_end_in_the_future() -> None:
    clock = Clock()
    s = new_session()
    with pytest.raises(ValueError, match="future"):
        s.start_stage(FETCH, "w", clock(), clock())


def test_released_claims_use_no_attempt_and_heartbeats_extend_the_lease() -> None:
    clock = Clock()
    s = new_session()
    s.start_stage(FETCH, "w1", lease(clock, 10), clock())
    later = clock.now + timedelta(seconds=30)
    s.extend_lease(FETCH, 1, later, clock.advance(5))
    assert s.stages[FETCH].lease_expires_at == later
    s.release_stage(FETCH, 1, "the daemon is stopping", clock())
    st = s.stages[FETCH]
    assert (st.status, st.attempt, st.attempts_run, st.retry_count) == (Status.PENDING, 1, 0, 0)
    assert st.note == "released: the daemon is stopping"
    assert s.start_stage(FETCH, "w2", lease(clock), clock()) == 2  # never reused
    with pytest.raises(StaleAttempt):
        s.release_stage(FETCH, 1, "late", clock())
    assert s.stages[FETCH].attempts_run == 1


def test_a_retryable_failure_without_a_retry_time_is_stored_as_not_retryable() -> None:
    clock = Clock()
    s = new_session()
    s.start_stage(FETCH, "w1", lease(clock), clock())
    s.fail_stage(FETCH, 1, "http_500", "HTTP 500", True, None, clock())
    failed = s.collect_events()[-1]
    assert isinstance(failed, Session.StageFailed) and failed.retryable is False
    assert s.stages[FETCH].retryable is False and s.stages[FETCH].is_dead


def test_a_paid_request_and_its_answer_are_stored_once_each() -> None:
    clock = Clock()
    s = new_session()
    s.start_stage(FETCH, "w1", lease(clock), clock())
    intent = AIRequestIntent(
        client_request_id="c1",
        provider="openai",
        model="gpt-4o-mini",
        purpose="analysis",
        prompt_tokens_estimated=100,
        max_output_tokens=800,
        cost_eur_estimated=None,
        sent_at=clock(),
    )
    usage = AIUsage(
        provider="openai",
        model_requested="gpt-4o-mini",
        model_returned=None,
        request_id="r1",
        prompt_tokens=100,
        completion_tokens=10,
        cached_tokens=0,
        reasoning_tokens=0,
        total_tokens=110,
        cost_usd=None,
        cost_eur=None,
        price_source="test",
        response_text="{}",
        requested_at=clock(),
        received_at=clock(),
        client_request_id="c1",
    )
    # Applied again after a commit whose reply was lost: nothing is stored twice.
    assert s.record_ai_request(FETCH, 1, intent) is True
    assert s.record_ai_request(FETCH, 1, intent) is False
    assert s.record_ai_usage(FETCH, 1, usage) is True
    assert s.record_ai_usage(FETCH, 1, usage) is False
    kinds = [type(e).__name__ for e in s.collect_events()]
    assert kinds.count("AIRequestSent") == kinds.count("AIUsageRecorded") == 1
