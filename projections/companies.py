"""The company projection: tenants, their settings and status, and every import run."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, insert, update

from domain.company import Company
from domain.urls import redact
from projections.runner import Event
from projections.schema import companies, company_budgets, import_rejections, import_runs
from projections.upsert import upsert

COMPANY_EVENTS: tuple[type[Any], ...] = (
    Company.Registered,
    Company.StatusChanged,
    Company.SettingsChanged,
    Company.ImportRecorded,
    Company.AIBudgetChanged,
    Company.AIBudgetReached,
)


class CompanyProjection:
    name = "companies"
    topics = tuple(cls.TOPIC for cls in COMPANY_EVENTS)
    tables: tuple[str, ...] = (
        companies.name,
        import_runs.name,
        import_rejections.name,
        company_budgets.name,
    )

    def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        for event in events:
            cid = event.originator_id
            if isinstance(event, Company.Registered):
                upsert(
                    conn,
                    companies,
                    [
                        {
                            "company_id": cid,
                            "name": event.name,
                            "status": event.status.value,
                            "csv_url": redact(event.csv_url),
                            "username": event.username,
                            "password_ref": event.password_ref.describe()
                            if event.password_ref
                            else None,
                            "timezone": event.timezone,
                            "ai_model": event.ai_model,
                            "registered_at": event.timestamp,
                            "updated_at": event.timestamp,
                            "status_reason": None,
                        }
                    ],
                    ("company_id",),
                )
            elif isinstance(event, Company.StatusChanged):
                conn.execute(
                    update(companies)
                    .where(companies.c.company_id == cid)
                    .values(
                        status=event.status.value,
                        status_reason=event.reason,
                        updated_at=event.timestamp,
                    )
                )
            elif isinstance(event, Company.SettingsChanged):
                conn.execute(
                    update(companies)
                    .where(companies.c.company_id == cid)
                    .values(
                        csv_url=redact(event.csv_url),
                        username=event.username,
                        password_ref=event.password_ref.describe() if event.password_ref else None,
                        timezone=event.timezone,
                        ai_model=event.ai_model,
                        updated_at=event.timestamp,
                    )
                )
            elif isinstance(event, Company.ImportRecorded):
                self._import_run(conn, event)
            elif isinstance(event, Company.AIBudgetChanged):
                values: dict[str, Any] = {
                    "budget_eur": Decimal(event.amount_eur) if event.amount_eur else None,
                    "period": event.period,
                    "changed_by": event.actor,
                    "change_reason": event.reason,
                }
                self._budget(conn, cid, event.timestamp, values)
            elif isinstance(event, Company.AIBudgetReached):
                values = {
                    "reached_period_start": event.period_start,
                    "reached_at": event.timestamp,
                    "resumes_at": event.resumes_at,
                }
                self._budget(conn, cid, event.timestamp, values)

    @staticmethod
    def _budget(conn: Connection, cid: Any, at: Any, values: dict[str, Any]) -> None:
        changed = conn.execute(
            update(company_budgets)
            .where(company_budgets.c.company_id == cid)
            .values(**values, updated_at=at)
        )
        if not changed.rowcount:
            conn.execute(insert(company_budgets).values(company_id=cid, updated_at=at, **values))

    @staticmethod
    def _import_run(conn: Connection, event: Any) -> None:
        run = event.run
        upsert(
            conn,
            import_runs,
            [
                {
                    "run_id": run.run_id,
                    "company_id": event.originator_id,
                    "source": redact(run.source),
                    "started_at": run.started_at,
                    "finished_at": run.finished_at,
                    "duration_ms": run.duration_ms,
                    "outcome": run.outcome,
                    "rows_seen": run.rows_seen,
                    "new": run.new,
                    "changed": run.changed,
                    "unchanged": run.unchanged,
                    "rejected": run.rejected,
                    "bytes": run.bytes,
                    "http_status": run.http_status,
                    "error": redact(run.error) if run.error else None,
                }
            ],
            ("run_id",),
        )
        upsert(
            conn,
            import_rejections,
            [
                {
                    "run_id": run.run_id,
                    "row_number": r.row_number,
                    "company_id": event.originator_id,
                    "reason": r.reason,
                    "raw_line": redact(r.raw_line),
                }
                for r in run.rejections
            ],
            ("run_id", "row_number"),
        )

    def forget(self) -> None:
        """Nothing is kept between pages."""

    def clear(self, conn: Connection) -> None:
        conn.execute(delete(import_rejections))
        conn.execute(delete(import_runs))
        conn.execute(delete(company_budgets))
        conn.execute(delete(companies))
