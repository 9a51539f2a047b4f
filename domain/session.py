"""The Session aggregate: one chat session's journey through the five stages.

Every change is an explicit event with a stable topic. Commands take ``now`` from the caller
(the domain reads no clock), check the invariants and raise a DomainError when refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.analysis import SessionAnalysis
from domain.csv_rows import SourceRow
from domain.errors import InvalidReset, StageAlreadyRunning, StageNotReady, StaleAttempt
from domain.payloads import AIRequestIntent, AIUsage, FetchedTranscript, SessionFields
from domain.personal import redact_attribute, redact_session
from domain.stage_state import (
    StageStates,
    new_states,
    on_completed,
    on_failed,
    on_imported,
    on_lease_extended,
    on_released,
    on_reset,
    on_row_changed,
    on_skipped,
    on_started,
)
from domain.stages import STAGE_ORDER, Stage, Status, is_ready
from domain.transcript import Message

LEASE_EXPIRED = "lease_expired"


def session_id_for(company_id: UUID, external_id: str) -> UUID:
    """Deterministic id: importing the same row twice addresses the same aggregate."""
    return uuid5(company_id, external_id)


class Session(Aggregate):
    TOPIC = "livedash:Session"

    class Event(Aggregate.Event):
        """Base of the session's events: ``origin`` marks events written by a migration
        (``{"migrated_from": "livedash-node", "legacy_session_id": ...}``); None otherwise."""

        TOPIC = "livedash:Session.Event"
        origin: dict[str, Any] | None = field(default=None, kw_only=True)

    class Imported(Event, Aggregate.Created):
        """CSV_IMPORT completed: a row became a session; the other stages are PENDING."""

        TOPIC = "livedash:Session.Imported"
        company_id: UUID
        external_id: str
        row: SourceRow
        source: str

    class SourceRowChanged(Event):
        TOPIC = "livedash:Session.SourceRowChanged"
        row: SourceRow
        source: str
        previous_fingerprint: str

        def apply(self, aggregate: Session) -> None:
            aggregate.row = self.row
            aggregate.source = self.source
            aggregate.transcript = None
            aggregate.messages = []
            aggregate.fields = None
            aggregate.analysis = None
            aggregate.analysis_provider = None
            aggregate.analysis_model = None
            aggregate.analysis_from_attempt = None
            aggregate.questions = []
            on_row_changed(aggregate.stages, self.timestamp)

    class StageStarted(Event):
        TOPIC = "livedash:Session.StageStarted"
        stage: Stage
        attempt: int
        worker: str
        lease_expires_at: datetime

        def apply(self, aggregate: Session) -> None:
            on_started(
                aggregate.stages,
                self.stage,
                self.attempt,
                self.worker,
                self.lease_expires_at,
                self.timestamp,
            )

    class StageCompleted(Event):
        TOPIC = "livedash:Session.StageCompleted"
        stage: Stage
        attempt: int
        metadata: dict[str, Any]

        def apply(self, aggregate: Session) -> None:
            on_completed(aggregate.stages, self.stage, self.metadata, self.timestamp)

    class StageFailed(Event):
        TOPIC = "livedash:Session.StageFailed"
        stage: Stage
        attempt: int
        error_type: str
        error: str
        retryable: bool
        retry_at: datetime | None

        def apply(self, aggregate: Session) -> None:
            on_failed(
                aggregate.stages,
                self.stage,
                self.error_type,
                self.error,
                self.retryable,
                self.retry_at,
                self.timestamp,
            )

    class StageReleased(Event):
        """A claim handed back before its work started (the daemon stopped, the database was
        away, no rate-limit slot came): the stage waits again and no attempt was used."""

        TOPIC = "livedash:Session.StageReleased"
        stage: Stage
        attempt: int
        reason: str

        def apply(self, aggregate: Session) -> None:
            on_released(aggregate.stages, self.stage, self.reason, self.timestamp)

    class LeaseExtended(Event):
        """A running (or queued) attempt's heartbeat: its worker is alive, the claim holds."""

        TOPIC = "livedash:Session.LeaseExtended"
        stage: Stage
        attempt: int
        lease_expires_at: datetime

        def apply(self, aggregate: Session) -> None:
            on_lease_extended(aggregate.stages, self.stage, self.lease_expires_at)

    class AIRequestSent(Event):
        """A paid request is about to leave; stored before it is sent."""

        TOPIC = "livedash:Session.AIRequestSent"
        stage: Stage
        attempt: int
        intent: AIRequestIntent

        def apply(self, aggregate: Session) -> None:
            aggregate.ai_requests[self.intent.client_request_id] = self.attempt

    class StageSkipped(Event):
        TOPIC = "livedash:Session.StageSkipped"
        stage: Stage
        reason: str

        def apply(self, aggregate: Session) -> None:
            on_skipped(aggregate.stages, self.stage, self.reason, self.timestamp)

    class StageReset(Event):
        """Version 2 records the status the stage was reset from (an auditor's first
        question: a retry of a failure, or a reprocess of finished work?). Events stored
        before it have no such field and load with ``reset_from`` None: "not recorded"."""

        TOPIC = "livedash:Session.StageReset"
        class_version = 2
        stage: Stage
        reason: str
        actor: str
        force: bool
        reset_from: Status | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["reset_from"] = None

        def apply(self, aggregate: Session) -> None:
            on_reset(aggregate.stages, self.stage, self.reason, self.timestamp)

    class AIUsageRecorded(Event):
        TOPIC = "livedash:Session.AIUsageRecorded"
        stage: Stage
        attempt: int
        usage: AIUsage

        def apply(self, aggregate: Session) -> None:
            aggregate.ai_usage.append((self.stage, self.attempt, self.usage))

    class TranscriptFetched(Event):
        TOPIC = "livedash:Session.TranscriptFetched"
        attempt: int
        transcript: FetchedTranscript

        def apply(self, aggregate: Session) -> None:
            aggregate.transcript = self.transcript

    class SessionParsed(Event):
        TOPIC = "livedash:Session.SessionParsed"
        attempt: int
        messages: list[Message]
        fields: SessionFields

        def apply(self, aggregate: Session) -> None:
            aggregate.messages = list(self.messages)
            aggregate.fields = self.fields

    class AnalysisRecorded(Event):
        TOPIC = "livedash:Session.AnalysisRecorded"
        attempt: int
        analysis: SessionAnalysis
        provider: str
        model: str
        prompt_version: str

        def apply(self, aggregate: Session) -> None:
            aggregate.analysis = self.analysis
            aggregate.analysis_provider = self.provider
            aggregate.analysis_model = self.model
            aggregate.analysis_from_attempt = self.attempt

    class QuestionsExtracted(Event):
        TOPIC = "livedash:Session.QuestionsExtracted"
        attempt: int
        questions: list[str]

        def apply(self, aggregate: Session) -> None:
            aggregate.questions = list(self.questions)

    class PersonalDataErased(Event):
        """The session's data key was deleted: its personal values are unreadable everywhere;
        transitions, counts and costs stay. Final: later personal data is not stored."""

        TOPIC = "livedash:Session.PersonalDataErased"
        actor: str
        reason: str
        fields: list[str]
        row_fingerprint: str
        """Of the redacted row: what the read models keep instead of the original's."""

        def apply(self, aggregate: Session) -> None:
            aggregate.erased_at = self.timestamp
            aggregate.erased_by = self.actor
            aggregate.erasure_reason = self.reason
            redact_session(aggregate)

    # Class-level defaults: sessions stored before erasure existed load without them.
    erased_at: datetime | None = None
    erased_by: str | None = None
    erasure_reason: str | None = None

    def __init__(self, company_id: UUID, external_id: str, row: SourceRow, source: str) -> None:
        self.company_id = company_id
        self.external_id = external_id
        self.row = row
        self.source = source
        self.stages: StageStates = new_states()
        on_imported(self.stages, self.created_on)
        self.transcript: FetchedTranscript | None = None
        self.messages: list[Message] = []
        self.fields: SessionFields | None = None
        self.analysis: SessionAnalysis | None = None
        self.analysis_provider: str | None = None
        self.analysis_model: str | None = None
        self.analysis_from_attempt: int | None = None
        self.questions: list[str] = []
        self.ai_usage: list[tuple[Stage, int, AIUsage]] = []
        self.ai_requests: dict[str, int] = {}
        """Client request id of every paid request sent -> its attempt."""

    # ----------------------------------------------------------------- creation
    @classmethod
    def import_row(
        cls,
        company_id: UUID,
        row: SourceRow,
        source: str,
        now: datetime,
        origin: dict[str, Any] | None = None,
    ) -> Session:
        return cls._create(
            cls.Imported,
            id=session_id_for(company_id, row.external_id),
            company_id=company_id,
            external_id=row.external_id,
            row=row,
            source=source,
            timestamp=now,
            origin=origin,
        )

    @contextmanager
    def recording_origin(self, origin: dict[str, Any]) -> Iterator[None]:
        """Every event triggered inside carries ``origin`` (used by the legacy migration)."""
        self.__dict__["_origin"] = origin
        try:
            yield
        finally:
            self.__dict__.pop("_origin", None)

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        origin = self.__dict__.get("_origin")
        if origin is not None:
            kwargs.setdefault("origin", origin)
        super().trigger_event(event_class, **kwargs)

    def change_row(self, row: SourceRow, source: str, now: datetime) -> bool:
        """Records a changed CSV row; an identical row changes nothing and returns False,
        and so does any row of an erased session (its stored row is redacted)."""
        if self.erased_at is not None:
            return False
        previous = self.row.fingerprint()
        if row.fingerprint() == previous:
            return False
        self.trigger_event(
            self.SourceRowChanged,
            row=row,
            source=source,
            previous_fingerprint=previous,
            timestamp=now,
        )
        return True

    # ------------------------------------------------------------------ queries
    def is_ready(self, stage: Stage) -> bool:
        previous = stage.previous
        return is_ready(stage, self.stages[previous].status if previous else None)

    def is_due(self, stage: Stage, now: datetime) -> bool:
        """Ready and waiting for a worker: PENDING, a retry that is due, or an expired lease."""
        if not self.is_ready(stage):
            return False
        s = self.stages[stage]
        if s.status is Status.PENDING:
            return True
        if s.status is Status.FAILED:
            return s.retry_at is not None and s.retry_at <= now
        if s.status is Status.IN_PROGRESS:
            return not s.lease_live(now)
        return False

    def skip_reason(self, stage: Stage) -> str | None:
        """The skip rules: a stage with nothing to work on is SKIPPED, never left PENDING."""
        if stage is Stage.TRANSCRIPT_FETCH and not self.row.transcript_url:
            return "no transcript URL in the CSV row"
        if stage is Stage.AI_ANALYSIS and not self.messages:
            return "no transcript messages"
        if (
            stage is Stage.QUESTION_EXTRACTION
            and self.stages[Stage.AI_ANALYSIS].status is Status.SKIPPED
        ):
            return "analysis was skipped"
        return None

    @property
    def current_stage(self) -> Stage | None:
        """The first stage that is not done, or None when the session went all the way."""
        for stage in STAGE_ORDER:
            if self.stages[stage].status not in (Status.COMPLETED, Status.SKIPPED):
                return stage
        return None

    # ----------------------------------------------------------------- commands
    def start_stage(
        self, stage: Stage, worker: str, lease_expires_at: datetime, now: datetime
    ) -> int:
        """Claims the stage for one attempt and returns the attempt number.

        A stage running under an expired lease is first recorded as failed, so the audit
        trail shows the worker that vanished.
        """
        self._require_worker_stage(stage)
        if not self.is_ready(stage):
            raise StageNotReady(f"{stage.value} is not ready: {self._why_not_ready(stage)}")
        s = self.stages[stage]
        if s.status is Status.IN_PROGRESS:
            if s.lease_live(now):
                raise StageAlreadyRunning(
                    f"{stage.value} attempt {s.attempt} is running on {s.worker} "
                    f"until {s.lease_expires_at:%Y-%m-%d %H:%M:%S%z}"
                )
            self.expire_lease(stage, now)
        elif s.status is Status.FAILED:
            if s.retry_at is None:
                raise StageNotReady(
                    f"{stage.value} failed for good ({s.error_type}); reset it to try again"
                )
            if s.retry_at > now:
                raise StageNotReady(f"{stage.value} is scheduled to retry at {s.retry_at}")
        elif s.status is not Status.PENDING:
            raise StageNotReady(f"{stage.value} is {s.status.value}")
        if lease_expires_at <= now:
            raise ValueError("a lease must end in the future")
        attempt = self.stages[stage].attempt + 1
        self.trigger_event(
            self.StageStarted,
            stage=stage,
            attempt=attempt,
            worker=worker,
            lease_expires_at=lease_expires_at,
            timestamp=now,
        )
        return attempt

    def expire_lease(self, stage: Stage, now: datetime) -> None:
        s = self.stages[stage]
        if s.status is not Status.IN_PROGRESS:
            raise StaleAttempt(f"{stage.value} is not running")
        if s.lease_live(now):
            raise StageAlreadyRunning(f"{stage.value} attempt {s.attempt} still holds its lease")
        self.trigger_event(
            self.StageFailed,
            stage=stage,
            attempt=s.attempt,
            error_type=LEASE_EXPIRED,
            error=f"worker {s.worker} did not finish before its lease expired",
            retryable=True,
            retry_at=now,
            timestamp=now,
        )

    def complete_stage(
        self,
        stage: Stage,
        attempt: int,
        now: datetime,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._require_current(stage, attempt)
        self.trigger_event(
            self.StageCompleted,
            stage=stage,
            attempt=attempt,
            metadata=metadata or {},
            timestamp=now,
        )

    def fail_stage(
        self,
        stage: Stage,
        attempt: int,
        error_type: str,
        error: str,
        retryable: bool,
        retry_at: datetime | None,
        now: datetime,
    ) -> None:
        self._require_current(stage, attempt)
        self.trigger_event(
            self.StageFailed,
            stage=stage,
            attempt=attempt,
            error_type=error_type,
            error=error,
            retryable=retryable and retry_at is not None,
            retry_at=retry_at if retryable else None,
            timestamp=now,
        )

    def release_stage(self, stage: Stage, attempt: int, reason: str, now: datetime) -> None:
        """Hands a claim back whose work never started: PENDING again, no attempt used."""
        self._require_current(stage, attempt)
        self.trigger_event(
            self.StageReleased, stage=stage, attempt=attempt, reason=reason, timestamp=now
        )

    def extend_lease(
        self, stage: Stage, attempt: int, lease_expires_at: datetime, now: datetime
    ) -> None:
        """The heartbeat of a live worker: a lease may be short and a slow call still keep it.
        Extending a lapsed lease is allowed while nobody took the stage over (then the
        aggregate has moved on and the attempt is no longer current)."""
        self._require_current(stage, attempt)
        if lease_expires_at <= now:
            raise ValueError("a lease must end in the future")
        self.trigger_event(
            self.LeaseExtended,
            stage=stage,
            attempt=attempt,
            lease_expires_at=lease_expires_at,
            timestamp=now,
        )

    def skip_stage(self, stage: Stage, reason: str, now: datetime) -> None:
        self._require_worker_stage(stage)
        if not self.is_ready(stage):
            raise StageNotReady(f"{stage.value} is not ready: {self._why_not_ready(stage)}")
        status = self.stages[stage].status
        if status is not Status.PENDING:
            raise StageNotReady(
                f"only a PENDING stage can be skipped; {stage.value} is {status.value}"
            )
        self.trigger_event(self.StageSkipped, stage=stage, reason=reason, timestamp=now)

    def reset_stage(
        self, stage: Stage, reason: str, actor: str, now: datetime, force: bool = False
    ) -> None:
        """An operator's retry or reprocess: the stage and every later stage go back to PENDING."""
        self._require_worker_stage(stage)
        status = self.stages[stage].status
        allowed = {Status.FAILED, Status.SKIPPED} | ({Status.COMPLETED} if force else set())
        if status not in allowed:
            hint = (
                " (use force to reprocess a COMPLETED stage)" if status is Status.COMPLETED else ""
            )
            raise InvalidReset(f"cannot reset {stage.value}: it is {status.value}{hint}")
        self.trigger_event(
            self.StageReset,
            stage=stage,
            reason=reason,
            actor=actor,
            force=force,
            reset_from=status,
            timestamp=now,
        )

    # ---------------------------------------------------- completions with data
    def record_transcript(
        self, attempt: int, transcript: FetchedTranscript, now: datetime, metadata: dict[str, Any]
    ) -> None:
        self._require_current(Stage.TRANSCRIPT_FETCH, attempt)
        self.trigger_event(
            self.TranscriptFetched, attempt=attempt, transcript=transcript, timestamp=now
        )
        self.complete_stage(Stage.TRANSCRIPT_FETCH, attempt, now, metadata)

    def record_parsed(
        self,
        attempt: int,
        messages: list[Message],
        fields: SessionFields,
        now: datetime,
        metadata: dict[str, Any],
    ) -> None:
        self._require_current(Stage.SESSION_CREATION, attempt)
        self.trigger_event(
            self.SessionParsed, attempt=attempt, messages=messages, fields=fields, timestamp=now
        )
        self.complete_stage(Stage.SESSION_CREATION, attempt, now, metadata)

    def record_analysis(
        self,
        attempt: int,
        analysis: SessionAnalysis,
        provider: str,
        model: str,
        prompt_version: str,
        now: datetime,
        metadata: dict[str, Any],
    ) -> None:
        self._require_current(Stage.AI_ANALYSIS, attempt)
        self.trigger_event(
            self.AnalysisRecorded,
            attempt=attempt,
            analysis=analysis,
            provider=provider,
            model=model,
            prompt_version=prompt_version,
            timestamp=now,
        )
        self.complete_stage(Stage.AI_ANALYSIS, attempt, now, metadata)

    def record_questions(
        self, attempt: int, questions: list[str], now: datetime, metadata: dict[str, Any]
    ) -> None:
        self._require_current(Stage.QUESTION_EXTRACTION, attempt)
        self.trigger_event(
            self.QuestionsExtracted, attempt=attempt, questions=questions, timestamp=now
        )
        self.complete_stage(Stage.QUESTION_EXTRACTION, attempt, now, metadata)

    def record_ai_usage(self, stage: Stage, attempt: int, usage: AIUsage) -> bool:
        """Recorded as soon as a response arrives, before its output is validated; also for an
        attempt that lost its lease meanwhile, because the call was paid for all the same.
        Idempotent per client request id: an answer is never stored (and costed) twice, even
        when the commit that stored it lost its reply. Returns whether an event was recorded."""
        rid = usage.client_request_id
        if rid is not None and any(u.client_request_id == rid for _, _, u in self.ai_usage):
            return False
        if not 1 <= attempt <= self.stages[stage].attempt:
            raise StaleAttempt(f"{stage.value} never had an attempt {attempt}")
        self.trigger_event(
            self.AIUsageRecorded,
            stage=stage,
            attempt=attempt,
            usage=usage,
            timestamp=usage.received_at,
        )
        return True

    def record_ai_request(self, stage: Stage, attempt: int, intent: AIRequestIntent) -> bool:
        """Stored before a paid request is sent, so a lost answer is never silently nothing.
        Idempotent: an intent already stored (a commit whose reply was lost) is not stored
        again; returns whether an event was recorded."""
        if intent.client_request_id in self.ai_requests:
            return False
        if not 1 <= attempt <= self.stages[stage].attempt:
            raise StaleAttempt(f"{stage.value} never had an attempt {attempt}")
        self.trigger_event(
            self.AIRequestSent,
            stage=stage,
            attempt=attempt,
            intent=intent,
            timestamp=intent.sent_at,
        )
        return True

    def erase_personal_data(
        self, actor: str, reason: str, fields: list[str], now: datetime
    ) -> bool:
        """Records the erasure (the store deleted the key first); False when already erased."""
        if self.erased_at is not None:
            return False
        redacted = redact_attribute(self.Imported.TOPIC, "row", self.row)
        self.trigger_event(
            self.PersonalDataErased,
            actor=actor,
            reason=reason,
            fields=fields,
            row_fingerprint=redacted.fingerprint(),
            timestamp=now,
        )
        return True

    # ------------------------------------------------------------------ helpers
    def _require_current(self, stage: Stage, attempt: int) -> None:
        s = self.stages[stage]
        if s.status is not Status.IN_PROGRESS or s.attempt != attempt:
            raise StaleAttempt(
                f"{stage.value} attempt {attempt} is not current "
                f"(stage is {s.status.value}, current attempt {s.attempt})"
            )

    @staticmethod
    def _require_worker_stage(stage: Stage) -> None:
        if stage is Stage.CSV_IMPORT:
            raise StageNotReady("CSV_IMPORT is completed by importing the row, not by a worker")

    def _why_not_ready(self, stage: Stage) -> str:
        previous = stage.previous
        assert previous is not None
        return f"{previous.value} is {self.stages[previous].status.value}"
