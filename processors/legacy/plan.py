"""What each stage of a migrated session becomes: pure decisions, no I/O, no aggregate.

Order of precedence, per stage:

1. A `SessionProcessingStatus` row (refactored variant) is the truth: its status, times, error
   message, retry count and metadata.
2. Otherwise the decision table of the original's migration script (livedash-legacy-schema.md).
   In the pre-refactor variant the import's own status is laid on top: ERROR marks the first
   unfinished of TRANSCRIPT_FETCH / SESSION_CREATION as FAILED with `errorMsg`, PROCESSING marks it
   IN_PROGRESS.
3. An import that never became a session has CSV_IMPORT completed and every later stage PENDING,
   except that transcript text it already holds counts as fetched (nothing fetched is thrown away).

Then the plan is made consistent with our stage order, which the original never enforced
(`reconcile`): a COMPLETED stage keeps its data, so a predecessor that is not done is promoted to
the least it must be (TRANSCRIPT_FETCH SKIPPED unless its text is stored, SESSION_CREATION
COMPLETED with the messages there are, AI_ANALYSIS COMPLETED when analysis fields exist, else
SKIPPED); any other stage whose predecessor does not allow it becomes PENDING. Every such change is
reported as a problem with the legacy value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.stages import READY_WHEN_PREVIOUS, STAGE_ORDER, WORKER_STAGES, Stage, Status
from processors.legacy.records import LegacyUnit

REASON_NO_URL = "no transcript URL in original import"
REASON_NO_CONTENT = "no transcript content available"


@dataclass
class StagePlan:
    status: Status
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    retries: int = 0
    """Failures the legacy system counted (`retryCount`)."""
    reason: str | None = None
    legacy_metadata: Any = None
    legacy_status: str | None = None
    """The legacy status when the plan differs from it (promoted or demoted), else None."""
    notes: list[str] = field(default_factory=list)


Plans = dict[Stage, StagePlan]


def transcript_text(unit: LegacyUnit) -> str | None:
    text = unit.imp.transcript if unit.imp else None
    return text if text else None  # the original tested truthiness: "" is no transcript


def transcript_url(unit: LegacyUnit) -> str | None:
    url = unit.imp.transcript_url if unit.imp else None
    if not url and unit.session:
        url = unit.session.transcript_url
    url = url.strip() if url else None
    return url or None


def has_analysis(unit: LegacyUnit) -> bool:
    s = unit.session
    return bool(s and (s.summary or s.sentiment or s.category or s.language))


def imported_at(unit: LegacyUnit) -> datetime:
    if unit.imp is not None:
        return unit.imp.created_at
    assert unit.session is not None
    return unit.session.created_at


def _created_at(unit: LegacyUnit) -> datetime:
    return unit.session.created_at if unit.session else imported_at(unit)


def _analysed_at(unit: LegacyUnit) -> tuple[datetime, datetime]:
    ok = [r for r in unit.requests if r.success]
    chosen = ok or unit.requests
    if chosen:
        start = min(r.requested_at for r in chosen)
        end = max((r.completed_at or r.requested_at) for r in chosen)
        return start, end
    assert unit.session is not None
    return unit.session.updated_at, unit.session.updated_at


def decision_table(unit: LegacyUnit) -> Plans:
    text = transcript_text(unit)
    url = transcript_url(unit)
    created = _created_at(unit)
    plans: Plans = {Stage.CSV_IMPORT: StagePlan(Status.COMPLETED, created, created)}
    if unit.session is None:
        # Imports that never became sessions: the processors pick them up from the start.
        fetch = StagePlan(Status.COMPLETED, created, created) if text else StagePlan(Status.PENDING)
        plans[Stage.TRANSCRIPT_FETCH] = fetch
        for stage in STAGE_ORDER[2:]:
            plans[stage] = StagePlan(Status.PENDING)
        return plans
    if text:
        plans[Stage.TRANSCRIPT_FETCH] = StagePlan(Status.COMPLETED, created, created)
    elif not url:
        plans[Stage.TRANSCRIPT_FETCH] = StagePlan(
            Status.SKIPPED, created, created, reason=REASON_NO_URL
        )
    else:
        plans[Stage.TRANSCRIPT_FETCH] = StagePlan(Status.PENDING)
    if unit.messages:
        made = max((m.created_at for m in unit.messages if m.created_at), default=created)
        plans[Stage.SESSION_CREATION] = StagePlan(Status.COMPLETED, created, max(made, created))
    elif not text and not url:
        plans[Stage.SESSION_CREATION] = StagePlan(
            Status.SKIPPED, created, created, reason=REASON_NO_CONTENT
        )
    else:
        plans[Stage.SESSION_CREATION] = StagePlan(Status.PENDING)
    if has_analysis(unit):
        start, end = _analysed_at(unit)
        plans[Stage.AI_ANALYSIS] = StagePlan(Status.COMPLETED, start, end)
    else:
        plans[Stage.AI_ANALYSIS] = StagePlan(Status.PENDING)
    if unit.questions:
        ai = plans[Stage.AI_ANALYSIS]
        stamps = [q.created_at for q in unit.questions if q.created_at]
        start = min(stamps) if stamps else (ai.completed_at or created)
        end = max(stamps) if stamps else start
        plans[Stage.QUESTION_EXTRACTION] = StagePlan(Status.COMPLETED, start, end)
    else:
        plans[Stage.QUESTION_EXTRACTION] = StagePlan(Status.PENDING)
    return plans


def _from_status_rows(unit: LegacyUnit, plans: Plans, problems: list[str]) -> None:
    for name, row in unit.statuses.items():
        try:
            stage = Stage(name)
            status = Status(row.status)
        except ValueError:
            problems.append(f"status_row: unknown stage or status {name}/{row.status}; ignored")
            continue
        if stage is Stage.CSV_IMPORT:
            if status is not Status.COMPLETED:
                problems.append(
                    f"csv_import: legacy CSV_IMPORT was {status.value}"
                    + (f" ({row.error})" if row.error else "")
                    + "; the session exists, so it is COMPLETED"
                )
            continue
        plans[stage] = StagePlan(
            status,
            row.started_at or row.completed_at,
            row.completed_at or row.started_at,
            error=row.error,
            retries=max(0, row.retry_count),
            reason=(row.error or None) if status is Status.SKIPPED else None,
            legacy_metadata=row.metadata,
        )


def _from_import_status(unit: LegacyUnit, plans: Plans, problems: list[str]) -> None:
    imp = unit.imp
    if imp is None or imp.status not in ("ERROR", "PROCESSING"):
        return
    target = next(
        (
            s
            for s in (Stage.TRANSCRIPT_FETCH, Stage.SESSION_CREATION)
            if plans[s].status is Status.PENDING
        ),
        None,
    )
    if target is None:
        problems.append(
            f"import_status: legacy import status {imp.status}"
            + (f" ({imp.error})" if imp.error else "")
            + " but its transcript and session were already done; kept as a note"
        )
        return
    at = imp.processed_at or imp.created_at
    if imp.status == "ERROR":
        plans[target] = StagePlan(
            Status.FAILED, at, at, error=imp.error or "import failed (no message)", retries=1
        )
    else:
        plans[target] = StagePlan(Status.IN_PROGRESS, at, None)


def plan_stages(unit: LegacyUnit) -> tuple[Plans, list[str]]:
    problems: list[str] = []
    plans = decision_table(unit)
    if unit.statuses:
        _from_status_rows(unit, plans, problems)
    elif unit.imp is not None and unit.imp.status is not None:
        _from_import_status(unit, plans, problems)
    reconcile(unit, plans, problems)
    return plans, problems


def _promoted(unit: LegacyUnit, stage: Stage, plan: StagePlan, at: datetime | None) -> StagePlan:
    at = plan.completed_at or plan.started_at or at
    if stage is Stage.TRANSCRIPT_FETCH:
        if transcript_text(unit):
            return StagePlan(Status.COMPLETED, at, at)
        return StagePlan(
            Status.SKIPPED,
            at,
            at,
            reason="legacy: no transcript text stored, but the session was created without it",
        )
    if stage is Stage.AI_ANALYSIS and not has_analysis(unit):
        return StagePlan(
            Status.SKIPPED,
            at,
            at,
            reason="legacy: questions were extracted, but no analysis is stored",
        )
    return StagePlan(Status.COMPLETED, at, at, legacy_metadata=plan.legacy_metadata)


def reconcile(unit: LegacyUnit, plans: Plans, problems: list[str]) -> None:
    """Makes the plan one our stage order allows (see the module docstring)."""
    for stage in reversed(WORKER_STAGES[1:]):
        prev = stage.previous
        assert prev is not None
        plan = plans[stage]
        if plan.status is Status.COMPLETED and plans[prev].status not in READY_WHEN_PREVIOUS[stage]:
            old = plans[prev]
            new = _promoted(unit, prev, old, plan.started_at)
            new.legacy_status = old.status.value
            plans[prev] = new
            problems.append(
                f"stage_order: legacy {prev.value} was {old.status.value}"
                + (f" ({old.error})" if old.error else "")
                + f" although {stage.value} was COMPLETED; recorded as {new.status.value}"
            )
    for stage in WORKER_STAGES:
        prev = stage.previous
        assert prev is not None
        plan = plans[stage]
        if plan.status is Status.PENDING:
            continue
        if plans[prev].status not in READY_WHEN_PREVIOUS[stage]:
            problems.append(
                f"stage_order: legacy {stage.value} was {plan.status.value}"
                + (f" ({plan.error})" if plan.error else "")
                + f" but {prev.value} is {plans[prev].status.value}; recorded as PENDING"
            )
            plans[stage] = StagePlan(Status.PENDING, legacy_status=plan.status.value)


def sane_times(plan: StagePlan, fallback: datetime) -> tuple[datetime, datetime, str | None]:
    """Start and end of a stage's last attempt; an end before its start is moved to the start."""
    start = plan.started_at or plan.completed_at or fallback
    end = plan.completed_at or start
    if end < start:
        return start, start, f"completedAt {end.isoformat()} is before startedAt; used startedAt"
    return start, end, None
