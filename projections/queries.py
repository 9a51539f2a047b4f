"""Report queries over the projection tables. Reports never fold events and never scan all
sessions: counts come from `pipeline_overview`, lists from indexed slices of the status table."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, and_, func, or_, select

from domain.company import import_warning
from domain.stages import STAGE_ORDER, STATUSES, Stage, Status
from projections.models import (
    CompanyInfo,
    FailureInfo,
    ImportRunInfo,
    ImportWarning,
    NeedsProcessing,
    OldestPending,
    RejectionInfo,
    StageRow,
    StatusReport,
    WaitingCompany,
)
from projections.schema import (
    RETRY_SCHEDULED,
    companies,
    import_rejections,
    import_runs,
    pipeline_overview,
    session_stage_status,
    sessions,
)
from projections.workers import fleet_info

sss = session_stage_status


# ------------------------------------------------------------------ companies
def company_by_name(conn: Connection, name: str) -> CompanyInfo | None:
    row = conn.execute(
        select(companies).where(func.lower(companies.c.name) == name.strip().lower())
    ).first()
    return CompanyInfo.model_validate(row._asdict()) if row else None


def list_companies(conn: Connection) -> list[CompanyInfo]:
    counts = dict(
        conn.execute(
            select(pipeline_overview.c.company_id, func.sum(pipeline_overview.c.count))
            .where(pipeline_overview.c.stage == Stage.CSV_IMPORT.value)
            .group_by(pipeline_overview.c.company_id)
        ).all()
    )
    result = []
    for row in conn.execute(select(companies).order_by(companies.c.name)).all():
        info = CompanyInfo.model_validate(row._asdict())
        info.sessions = int(counts.get(row.company_id) or 0)
        runs = list_import_runs(conn, row.company_id, limit=1)
        info.last_import = runs[0] if runs else None
        result.append(info)
    return result


def list_import_runs(
    conn: Connection, company_id: UUID | None = None, limit: int = 20, rejections: bool = False
) -> list[ImportRunInfo]:
    query = (
        select(import_runs, companies.c.name.label("company"))
        .join(companies, companies.c.company_id == import_runs.c.company_id)
        .order_by(import_runs.c.finished_at.desc())
        .limit(limit)
    )
    if company_id is not None:
        query = query.where(import_runs.c.company_id == company_id)
    runs = []
    for row in conn.execute(query).all():
        run = ImportRunInfo.model_validate(row._asdict())
        if rejections:
            run.rejections = [
                RejectionInfo.model_validate(r._asdict())
                for r in conn.execute(
                    select(
                        import_rejections.c.row_number,
                        import_rejections.c.reason,
                        import_rejections.c.raw_line,
                    )
                    .where(import_rejections.c.run_id == row.run_id)
                    .order_by(import_rejections.c.row_number)
                ).all()
            ]
        runs.append(run)
    return runs


# --------------------------------------------------------------------- status
def overview(conn: Connection, company_id: UUID | None = None) -> dict[str, dict[str, int]]:
    """Counts per stage and status; every stage and status present, zeros included."""
    counts = {stage.value: {status.value: 0 for status in STATUSES} for stage in STAGE_ORDER}
    query = select(
        pipeline_overview.c.stage, pipeline_overview.c.status, func.sum(pipeline_overview.c.count)
    ).group_by(pipeline_overview.c.stage, pipeline_overview.c.status)
    if company_id is not None:
        query = query.where(pipeline_overview.c.company_id == company_id)
    for stage, status, n in conn.execute(query).all():
        if stage in counts and status in counts[stage]:
            counts[stage][status] = int(n or 0)
    return counts


def status_report(
    conn: Connection, company_id: UUID | None = None, company: str | None = None, failures: int = 5
) -> StatusReport:
    now = datetime.now(UTC)
    stages = overview(conn, company_id)
    retrying = _scheduled_retries(conn, company_id)
    needs = {
        stage.value: NeedsProcessing(
            pending=stages[stage.value]["PENDING"],
            failed_retrying=retrying.get(stage.value, 0),
            failed_dead=stages[stage.value]["FAILED"] - retrying.get(stage.value, 0),
            in_progress=stages[stage.value]["IN_PROGRESS"],
        )
        for stage in STAGE_ORDER
    }
    return StatusReport(
        generated_at=now,
        company=company,
        total_sessions=sum(stages[Stage.CSV_IMPORT.value].values()),
        stages=stages,
        needs_processing=needs,
        recent_failures=failed(conn, company_id=company_id, limit=failures),
        failed_total=sum(stages[s.value]["FAILED"] for s in STAGE_ORDER),
        oldest_pending=_oldest_pending(conn, company_id, now),
        waiting_companies=waiting_companies(conn, company_id),
        import_warnings=import_warnings(conn, company_id),
        fleet=fleet_info(conn, now),
    )


def import_warnings(conn: Connection, company_id: UUID | None = None) -> list[ImportWarning]:
    """Companies (not archived) whose last import needs attention. A poll that found the
    source unchanged (`not_modified`) says nothing new about the content, so an empty export
    stays visible until a different one arrives; an error is cleared by any later run."""
    query = select(companies.c.company_id, companies.c.name).where(companies.c.status != "ARCHIVED")
    if company_id is not None:
        query = query.where(companies.c.company_id == company_id)
    found = []
    for cid, name in conn.execute(query.order_by(companies.c.name)).all():
        latest = select(import_runs).where(import_runs.c.company_id == cid)
        latest = latest.order_by(import_runs.c.finished_at.desc()).limit(1)
        run = conn.execute(latest).first()
        if run is not None and run.outcome == "not_modified":
            run = conn.execute(latest.where(import_runs.c.outcome != "not_modified")).first()
        if run is None:
            continue
        message = import_warning(run.outcome, run.rows_seen, run.error)
        if message:
            found.append(
                ImportWarning(
                    company=name,
                    outcome=run.outcome,
                    finished_at=run.finished_at,
                    rows_seen=run.rows_seen,
                    error=run.error,
                    message=f"company {name}: {message}",
                )
            )
    return found


def _scheduled_retries(conn: Connection, company_id: UUID | None) -> dict[str, int]:
    """FAILED stages with a retry time, per stage: read from the overview's extra bucket."""
    query = (
        select(pipeline_overview.c.stage, func.sum(pipeline_overview.c.count))
        .where(pipeline_overview.c.status == RETRY_SCHEDULED)
        .group_by(pipeline_overview.c.stage)
    )
    if company_id is not None:
        query = query.where(pipeline_overview.c.company_id == company_id)
    return {stage: int(n or 0) for stage, n in conn.execute(query).all()}


def _oldest_pending(
    conn: Connection, company_id: UUID | None, now: datetime
) -> OldestPending | None:
    """One index seek per stage (stage, status, updated_at), never a scan of PENDING rows."""
    oldest = None
    for stage in STAGE_ORDER[1:]:
        query = (
            select(sss.c.stage, sss.c.session_id, sss.c.external_id, sss.c.updated_at)
            .where(sss.c.stage == stage.value, sss.c.status == Status.PENDING.value)
            .order_by(sss.c.updated_at)
            .limit(1)
        )
        if company_id is not None:
            query = query.where(sss.c.company_id == company_id)
        row = conn.execute(query).first()
        if row is not None and (oldest is None or row.updated_at < oldest.updated_at):
            oldest = row
    if oldest is None:
        return None
    return OldestPending(
        stage=oldest.stage,
        session_id=oldest.session_id,
        external_id=oldest.external_id,
        since=oldest.updated_at,
        age_seconds=round((now - oldest.updated_at).total_seconds(), 3),
    )


def waiting_companies(conn: Connection, company_id: UUID | None = None) -> list[WaitingCompany]:
    """Companies whose sessions are not worked on because the company is not ACTIVE."""
    done = (Status.COMPLETED.value, Status.SKIPPED.value)
    query = (
        select(
            companies.c.name,
            companies.c.status,
            companies.c.status_reason,
            func.sum(pipeline_overview.c.count),
        )
        .join(pipeline_overview, pipeline_overview.c.company_id == companies.c.company_id)
        .where(
            companies.c.status != "ACTIVE",
            pipeline_overview.c.stage == Stage.QUESTION_EXTRACTION.value,
            pipeline_overview.c.status.not_in((*done, RETRY_SCHEDULED)),
        )
        .group_by(companies.c.name, companies.c.status, companies.c.status_reason)
    )
    if company_id is not None:
        query = query.where(companies.c.company_id == company_id)
    result = []
    for name, status, reason, n in conn.execute(query).all():
        if n:
            why = f"company is {status}; only ACTIVE companies are processed"
            result.append(
                WaitingCompany(
                    company=name,
                    status=status,
                    waiting_sessions=int(n),
                    reason=why + (f" ({reason})" if reason else ""),
                )
            )
    return result


# ----------------------------------------------------------------- sessions
def list_sessions(
    conn: Connection,
    stage: Stage | None = None,
    status: Status | None = None,
    company_id: UUID | None = None,
    limit: int = 50,
) -> list[StageRow]:
    """Stage rows; without a stage, each session's current (first unfinished) stage."""
    query = select(sss).order_by(sss.c.updated_at.desc()).limit(limit)
    if stage is not None:
        query = query.where(sss.c.stage == stage.value)
    if status is not None:
        query = query.where(sss.c.status == status.value)
    if company_id is not None:
        query = query.where(sss.c.company_id == company_id)
    if stage is None and status is None:
        query = query.where(sss.c.stage == Stage.CSV_IMPORT.value)
    return [StageRow.model_validate(r._asdict()) for r in conn.execute(query).all()]


def session_rows(conn: Connection, session_id: UUID) -> list[StageRow]:
    rows = conn.execute(select(sss).where(sss.c.session_id == session_id)).all()
    by_stage = {r.stage: StageRow.model_validate(r._asdict()) for r in rows}
    return [by_stage[s.value] for s in STAGE_ORDER if s.value in by_stage]


def find_sessions(
    conn: Connection, key: str, company_id: UUID | None = None
) -> list[dict[str, Any]]:
    """Sessions whose internal id or external id is ``key``."""
    conditions = [sessions.c.external_id == key]
    with contextlib.suppress(ValueError):
        conditions = [sessions.c.session_id == UUID(key), *conditions]
    query = select(sessions, companies.c.name.label("company")).join(
        companies, companies.c.company_id == sessions.c.company_id, isouter=True
    )

    query = query.where(or_(*conditions))
    if company_id is not None:
        query = query.where(sessions.c.company_id == company_id)
    return [r._asdict() for r in conn.execute(query).all()]


def failed(
    conn: Connection,
    stage: Stage | None = None,
    company_id: UUID | None = None,
    limit: int = 100,
) -> list[FailureInfo]:
    """Most recent failures first; per stage, so each query is an index range (stage, status)."""
    rows: list[Any] = []
    for st in [stage] if stage is not None else list(STAGE_ORDER[1:]):
        query = (
            select(sss)
            .where(sss.c.stage == st.value, sss.c.status == Status.FAILED.value)
            .order_by(sss.c.updated_at.desc())
            .limit(limit)
        )
        if company_id is not None:
            query = query.where(sss.c.company_id == company_id)
        rows.extend(conn.execute(query).all())
    rows.sort(key=lambda r: r.updated_at, reverse=True)
    return [
        FailureInfo(
            session_id=r.session_id,
            external_id=r.external_id,
            company_id=r.company_id,
            stage=r.stage,
            attempt=r.attempt,
            retry_count=r.retry_count,
            attempts_run=r.attempts_run,
            retryable=r.retryable,
            error_type=r.error_type,
            error_message=r.error_message,
            will_retry=r.retry_at is not None,
            retry_at=r.retry_at,
            failed_at=r.completed_at,
        )
        for r in rows[:limit]
    ]


def failed_session_ids(
    conn: Connection, stage: Stage, company_id: UUID | None = None, error_type: str | None = None
) -> list[UUID]:
    """FAILED sessions of ``stage``; with ``error_type``, only those that failed so (the
    web page's failure groups; ``"unknown"`` is a failure without a type)."""
    query = select(sss.c.session_id).where(
        and_(sss.c.status == Status.FAILED.value, sss.c.stage == stage.value)
    )
    if company_id is not None:
        query = query.where(sss.c.company_id == company_id)
    if error_type == "unknown":
        query = query.where(sss.c.error_type.is_(None))
    elif error_type is not None:
        query = query.where(sss.c.error_type == error_type)
    return [r[0] for r in conn.execute(query).all()]


def fingerprints(conn: Connection, session_ids: list[UUID]) -> dict[UUID, str]:
    """Row fingerprints of the sessions that exist, for the importer's change detection."""
    found: dict[UUID, str] = {}
    for i in range(0, len(session_ids), 500):
        chunk = session_ids[i : i + 500]
        for sid, fp in conn.execute(
            select(sessions.c.session_id, sessions.c.row_fingerprint).where(
                sessions.c.session_id.in_(chunk)
            )
        ).all():
            found[sid] = fp
    return found


def stage_statuses(conn: Connection, session_ids: list[UUID]) -> dict[UUID, dict[str, str]]:
    """Each stored session's stage -> status, read in bulk; sessions not in the projection are
    absent (the legacy migration skips the ones an earlier run stored)."""
    found: dict[UUID, dict[str, str]] = {}
    for i in range(0, len(session_ids), 900):
        chunk = session_ids[i : i + 900]
        for sid, stage, status in conn.execute(
            select(sss.c.session_id, sss.c.stage, sss.c.status).where(sss.c.session_id.in_(chunk))
        ).all():
            found.setdefault(sid, {})[stage] = status
    return found
