"""Turning one legacy unit into a Session aggregate whose events retell its legacy history.

Everything goes through the domain's own commands with the legacy timestamps, so the migrated
history obeys the same invariants as a live one. A stage attempt is claimed by the worker
"legacy-migration" with a lease one hour past the attempt's end (it is always closed again in the
same breath). What each legacy status becomes:

- COMPLETED: earlier failures (`retryCount`) are retold as failed attempts, then one attempt that
  records the stage's data (transcript text, messages, analysis, questions) and completes.
- FAILED: `retryCount` failed attempts (at least one); the last carries the legacy message and is
  *not* retryable: the original never retried on its own, a failure may have been paid for, and the
  operator decides with `livedash retry`.
- IN_PROGRESS: the attempt is started at the legacy `startedAt` and recorded FAILED at migration
  time, retryable now ("interrupted before migration"), so the daemon takes it up.
- SKIPPED: skipped with the legacy reason.
- PENDING: stays PENDING; legacy failures or AI calls it had are retold as attempts and then a
  reset by "legacy-migration", so nothing paid disappears from the cost history.

AI_ANALYSIS: when the legacy fields form a valid `SessionAnalysis`, an `AnalysisRecorded` event
carries it. When they do not (a partial analysis, as pre-refactor sessions often have, or a summary
outside 10–300 characters), the stage is still COMPLETED, as the decision table says, with the raw
legacy values and the validation error in the completion metadata and no `AnalysisRecorded`: the
counts stay those of the original, nothing is invented, and `livedash retry --force` can redo it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.errors import DomainError
from domain.payloads import FetchedTranscript
from domain.session import Session
from domain.stages import WORKER_STAGES, Stage, Status
from processors.legacy.plan import StagePlan, imported_at, sane_times, transcript_text
from processors.legacy.prepare import MAX_RETOLD_FAILURES, Prepared, raw_analysis
from processors.stages.creation import build_fields

WORKER = "legacy-migration"
SOURCE = "livedash-node migration"
PROMPT_VERSION = "livedash-node"
LEASE = timedelta(hours=1)
INTERRUPTED = "interrupted before migration"


class _Builder:
    def __init__(self, p: Prepared, company_id: UUID, timezone: str, now: datetime) -> None:
        self.p = p
        self.company_id = company_id
        self.timezone = timezone
        self.now = now
        self.origin = p.origin()
        self.session = Session.import_row(
            company_id, p.row, SOURCE, imported_at(p.unit), origin=self.origin
        )
        self.last = imported_at(p.unit)
        self.current: Stage | None = None

    def _do(self, command: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self.session.recording_origin(self.origin):
            return command(*args, **kwargs)

    def _start(self, stage: Stage, at: datetime, until: datetime) -> int:
        lease = max(at, until) + LEASE
        attempt: int = self._do(self.session.start_stage, stage, WORKER, lease, at)
        return attempt

    def _fail(
        self,
        stage: Stage,
        attempt: int,
        error_type: str,
        error: str,
        retryable: bool,
        at: datetime,
        retry_at: datetime | None = None,
    ) -> None:
        self._do(
            self.session.fail_stage,
            stage,
            attempt,
            error_type,
            error,
            retryable,
            (retry_at or at) if retryable else None,
            at,
        )

    def _retell_failures(self, stage: Stage, n: int, at: datetime) -> None:
        for _ in range(n):
            attempt = self._start(stage, at, at)
            self._fail(
                stage,
                attempt,
                "legacy_failure",
                "earlier legacy failure (message not kept)",
                True,
                at,
            )

    def _usages(self, attempt: int) -> None:
        for request_id, usage in self.p.usages:
            origin = {**self.origin, "legacy_ai_request_id": request_id}
            with self.session.recording_origin(origin):
                self.session.record_ai_usage(Stage.AI_ANALYSIS, attempt, usage)

    def _retries(self, stage: Stage, plan: StagePlan, final_failure: bool) -> int:
        own = 1 if final_failure else 0  # the final failure is told anyway
        return max(0, min(plan.retries - own, MAX_RETOLD_FAILURES - own))

    def build(self) -> Session:
        for stage in WORKER_STAGES:
            self.current = stage
            self.stage(stage, self.p.plans[stage])
        return self.session

    def stage(self, stage: Stage, plan: StagePlan) -> None:
        start, end, _ = sane_times(plan, self.last)
        usages_here = stage is Stage.AI_ANALYSIS and bool(self.p.usages)
        if plan.status is Status.SKIPPED:
            reason = plan.reason or "skipped in the legacy system"
            self._do(self.session.skip_stage, stage, reason, end)
        elif plan.status is Status.COMPLETED:
            self._retell_failures(stage, self._retries(stage, plan, False), start)
            attempt = self._start(stage, start, end)
            if usages_here:
                self._usages(attempt)
            self.complete(stage, attempt, plan, end)
        elif plan.status is Status.FAILED:
            self._retell_failures(stage, self._retries(stage, plan, True), start)
            attempt = self._start(stage, start, end)
            if usages_here:
                self._usages(attempt)
            error = plan.error or "failed in the legacy system (no message)"
            self._fail(stage, attempt, "legacy_failure", error, False, end)
        elif plan.status is Status.IN_PROGRESS:
            self._retell_failures(stage, self._retries(stage, plan, False), start)
            attempt = self._start(stage, start, start)
            if usages_here:
                self._usages(attempt)
            since = f" (legacy status IN_PROGRESS since {start.isoformat()})"
            self._fail(stage, attempt, "interrupted", INTERRUPTED + since, True, self.now, self.now)
        else:  # PENDING
            retold = self._retries(stage, plan, False)
            if not (retold or usages_here):
                return
            at = start
            self._retell_failures(stage, retold, at)
            if usages_here:
                first = min(u.requested_at for _, u in self.p.usages)
                attempt = self._start(stage, first, first)
                self._usages(attempt)
                at = max(u.received_at for _, u in self.p.usages)
                self._fail(
                    stage,
                    attempt,
                    "legacy_unfinished",
                    "legacy AI call(s) without a stored analysis",
                    True,
                    at,
                )
            self._do(
                self.session.reset_stage,
                stage,
                "legacy stage was PENDING",
                WORKER,
                max(at, self.last),
            )
        self.last = max(self.last, end)

    def complete(self, stage: Stage, attempt: int, plan: StagePlan, at: datetime) -> None:
        p, s = self.p, self.session
        meta: dict[str, Any] = {"migrated": True}
        if plan.legacy_metadata is not None:
            meta["legacy_metadata"] = plan.legacy_metadata
        if plan.legacy_status is not None:
            meta["legacy_status"] = plan.legacy_status
        if stage is Stage.TRANSCRIPT_FETCH:
            text = transcript_text(p.unit)
            if text is None:
                meta["transcript_stored"] = False
                self._do(s.complete_stage, stage, attempt, at, meta)
                return
            data = text.encode("utf-8", "surrogatepass")
            transcript = FetchedTranscript(
                url=p.row.transcript_url or "",
                text=text,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                content_type=None,
                fetched_at=at,
            )
            meta.update(size=len(data), sha256=transcript.sha256)
            self._do(s.record_transcript, attempt, transcript, at, meta)
        elif stage is Stage.SESSION_CREATION:
            fields, outside = build_fields(p.row, p.messages)
            meta.update(
                has_transcript=transcript_text(p.unit) is not None,
                messages=fields.message_count,
                user_messages=fields.messages_sent,
                timestamps_outside_window=outside,
            )
            self._do(s.record_parsed, attempt, p.messages, fields, at, meta)
        elif stage is Stage.AI_ANALYSIS:
            cost = [u.cost_eur for _, u in p.usages if u.cost_eur is not None]
            meta["cost_eur"] = float(sum(cost, Decimal(0))) if cost else None
            model = next(
                (u.model_returned for _, u in reversed(p.usages) if u.total_tokens > 0), None
            )
            if p.analysis is None:
                meta["legacy_analysis"] = raw_analysis(p.unit) if p.unit.session else None
                meta["analysis_invalid"] = p.analysis_error or "no analysis stored"
                self._do(s.complete_stage, stage, attempt, at, meta)
                return
            a = p.analysis
            meta.update(
                provider="openai",
                model=model or "unknown",
                prompt_version=PROMPT_VERSION,
                language=a.language,
                sentiment=a.sentiment.value,
                category=a.category.value,
                questions=len(a.questions),
            )
            self._do(
                s.record_analysis,
                attempt,
                a,
                "openai",
                model or "unknown",
                PROMPT_VERSION,
                at,
                meta,
            )
        else:
            meta["questions"] = len(p.questions)
            self._do(s.record_questions, attempt, list(p.questions), at, meta)


def build_session(p: Prepared, company_id: UUID, timezone: str, now: datetime) -> Session:
    """The aggregate; a domain refusal at some stage leaves that stage and the later ones
    PENDING (reported), it never loses the session."""
    builder = _Builder(p, company_id, timezone, now)
    try:
        return builder.build()
    except DomainError as e:
        failed_at = builder.current or Stage.TRANSCRIPT_FETCH
        p.problems.append(f"domain: {e}; stages from {failed_at.value} on are PENDING")
        for stage in failed_at.and_later():
            old = p.plans[stage]
            p.plans[stage] = StagePlan(Status.PENDING, legacy_status=old.status.value)
        if failed_at.index <= Stage.AI_ANALYSIS.index:
            p.usages = []
        return _Builder(p, company_id, timezone, now).build()
