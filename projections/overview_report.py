"""`status --at T` and `status --between T1 T2`: the report shapes (their --json fields are
contracts) and how they are made from two prefix sums of the overview history."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import Connection

from domain.stages import STAGE_ORDER, STATUSES, Stage, Status
from projections.models import NeedsProcessing
from projections.overview_at import LogSource, Prefix, prefix
from projections.schema import RETRY_SCHEDULED


class StatusAt(BaseModel):
    at: datetime
    company: str | None
    position: int
    """The log position the answer stands at."""
    total_sessions: int
    stages: dict[str, dict[str, int]]
    needs_processing: dict[str, NeedsProcessing]
    failed_total: int


class Transition(BaseModel):
    stage: str
    from_status: str | None
    """None: the session was imported (the stage did not exist before)."""
    to_status: str
    count: int


class FailureCount(BaseModel):
    stage: str
    error_type: str
    count: int


class ResetCount(BaseModel):
    stage: str
    actor: str
    count: int


class AICallCost(BaseModel):
    stage: str
    model: str
    calls: int
    cost_eur: Decimal | None


class StatusBetween(BaseModel):
    since: datetime
    until: datetime
    """What took effect after ``since`` and at or before ``until``."""
    company: str | None
    position: int
    before: StatusAt
    after: StatusAt
    change: dict[str, dict[str, int]]
    """after - before, per stage and status."""
    sessions_imported: int
    transitions: list[Transition]
    failures: list[FailureCount]
    failures_total: int
    resets: list[ResetCount]
    ai_calls: list[AICallCost]
    cost_eur: Decimal | None


def status_at(
    conn: Connection,
    log: LogSource,
    at: datetime,
    company_id: UUID | None = None,
    company: str | None = None,
) -> StatusAt:
    return _status_at(prefix(conn, log, at, company_id), company)


def _status_at(p: Prefix, company: str | None) -> StatusAt:
    stages = {
        stage.value: {status.value: p.counts[(stage.value, status.value)] for status in STATUSES}
        for stage in STAGE_ORDER
    }
    needs = {}
    for stage in STAGE_ORDER:
        row = stages[stage.value]
        retrying = p.counts[(stage.value, RETRY_SCHEDULED)]
        needs[stage.value] = NeedsProcessing(
            pending=row[Status.PENDING.value],
            failed_retrying=retrying,
            failed_dead=row[Status.FAILED.value] - retrying,
            in_progress=row[Status.IN_PROGRESS.value],
        )
    return StatusAt(
        at=p.at,
        company=company,
        position=p.position,
        total_sessions=sum(stages[Stage.CSV_IMPORT.value].values()),
        stages=stages,
        needs_processing=needs,
        failed_total=sum(stages[s.value][Status.FAILED.value] for s in STAGE_ORDER),
    )


def status_between(
    conn: Connection,
    log: LogSource,
    since: datetime,
    until: datetime,
    company_id: UUID | None = None,
    company: str | None = None,
) -> StatusBetween:
    """Both prefixes in the caller's one snapshot; the window's activity is their difference."""
    first = prefix(conn, log, since, company_id)
    last = prefix(conn, log, until, company_id)
    before, after = _status_at(first, company), _status_at(last, company)
    change = {
        stage: {s: after.stages[stage][s] - before.stages[stage][s] for s in after.stages[stage]}
        for stage in after.stages
    }
    window: dict[tuple[str, str, str], tuple[int, Decimal | None]] = {}
    for key, (n, cost) in last.activity.items():
        n0, cost0 = first.activity.get(key, (0, None))
        if n - n0:
            window[key] = (n - n0, cost - (cost0 or Decimal(0)) if cost is not None else None)
    transitions, failures, resets, calls, imported = [], [], [], [], 0
    for (kind, stage, detail), (n, cost) in sorted(window.items(), key=_pipeline_order):
        if kind == "moved":
            old, new = detail.split(">", 1)
            transitions.append(
                Transition(stage=stage, from_status=None if old == "-" else old, to_status=new,
                           count=n)
            )  # fmt: skip
        elif kind == "failed":
            failures.append(FailureCount(stage=stage, error_type=detail, count=n))
        elif kind == "reset":
            resets.append(ResetCount(stage=stage, actor=detail, count=n))
        elif kind == "ai_call":
            calls.append(AICallCost(stage=stage, model=detail, calls=n, cost_eur=cost))
        elif kind == "imported":
            imported += n
    costs = [c.cost_eur for c in calls if c.cost_eur is not None]
    return StatusBetween(
        since=since,
        until=until,
        company=company,
        position=last.position,
        before=before,
        after=after,
        change=change,
        sessions_imported=imported,
        transitions=transitions,
        failures=failures,
        failures_total=sum(f.count for f in failures),
        resets=resets,
        ai_calls=calls,
        cost_eur=sum(costs, Decimal(0)) if costs else None,
    )


_STAGE_INDEX = {s.value: i for i, s in enumerate(STAGE_ORDER)}
_STATUS_INDEX = {s.value: i for i, s in enumerate(STATUSES)} | {"-": -1}


def _pipeline_order(item: tuple[tuple[str, str, str], object]) -> tuple[object, ...]:
    """Stages in pipeline order; a move's statuses in their order (new first)."""
    kind, stage, detail = item[0]
    statuses = tuple(_STATUS_INDEX.get(part, 99) for part in detail.split(">"))
    return (kind, _STAGE_INDEX.get(stage, -1), statuses, detail)
