"""The analytics projection: one row per session with what the stages found, the questions of
each session (the per-company catalogue is a GROUP BY over them), and every AI call's usage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, insert, select

from domain.personal import REDACTED_SUMMARY
from domain.session import Session
from projections import cost_rollup
from projections.erasure import ERASED_ANALYTICS, erased_among
from projections.runner import Event
from projections.schema import ai_cost_daily, ai_usage, analytics_sessions, session_questions
from projections.upsert import upsert

ANALYTICS_EVENTS: tuple[type[Any], ...] = (
    Session.Imported,
    Session.SourceRowChanged,
    Session.SessionParsed,
    Session.AnalysisRecorded,
    Session.QuestionsExtracted,
    Session.AIUsageRecorded,
)

ANALYSIS_COLUMNS = (
    "sentiment",
    "category",
    "escalated",
    "forwarded_hr",
    "summary",
    "analysis_language",
    "analysis_provider",
    "analysis_model",
)


def question_key(text: str) -> str:
    """Questions count as the same when they differ only in case and spacing."""
    return " ".join(text.split()).casefold()


def _row_fields(row: Any) -> dict[str, Any]:
    return {
        "external_id": row.external_id,
        "start_time": row.start_time,
        "end_time": row.end_time,
        "country": None,
        "language": None,
        "ip_address": row.ip_address,
        "messages_sent": row.messages_sent,
        "message_count": None,
        "avg_response_time": row.avg_response_time,
        "tokens": row.tokens,
        "tokens_eur": row.tokens_eur,
        "upstream_sentiment": row.sentiment,
        "upstream_category": row.category,
        "initial_message": row.initial_message,
        **dict.fromkeys(ANALYSIS_COLUMNS),
    }


class AnalyticsProjection:
    name = "analytics"
    topics = tuple(cls.TOPIC for cls in ANALYTICS_EVENTS)
    tables: tuple[str, ...] = (
        analytics_sessions.name,
        session_questions.name,
        ai_usage.name,
        ai_cost_daily.name,
    )

    def apply(self, conn: Connection, events: Sequence[Event]) -> None:
        ids = sorted({e.originator_id for e in events})
        rows = self._load(conn, ids)
        changed: set[UUID] = set()
        questions: dict[UUID, list[str]] = {}
        usages: list[dict[str, Any]] = []
        event: Any
        for event in events:
            sid = event.originator_id
            if isinstance(event, Session.Imported):
                rows[sid] = {
                    "session_id": sid,
                    "company_id": event.company_id,
                    **_row_fields(event.row),
                }
                questions[sid] = []
            elif sid not in rows:
                raise LookupError(f"{type(event).__name__} for unknown session {sid}")
            elif isinstance(event, Session.SourceRowChanged):
                rows[sid].update(_row_fields(event.row))
                questions[sid] = []
            elif isinstance(event, Session.SessionParsed):
                f = event.fields
                rows[sid].update(
                    country=f.country,
                    language=f.language,
                    messages_sent=f.messages_sent,
                    message_count=f.message_count,
                )
            elif isinstance(event, Session.AnalysisRecorded):
                a = event.analysis
                rows[sid].update(
                    sentiment=a.sentiment.value,
                    category=a.category.value,
                    escalated=a.escalated,
                    forwarded_hr=a.forwarded_hr,
                    summary=a.summary,
                    analysis_language=a.language,
                    analysis_provider=event.provider,
                    analysis_model=event.model,
                )
            elif isinstance(event, Session.QuestionsExtracted):
                questions[sid] = list(event.questions)
            elif isinstance(event, Session.AIUsageRecorded):
                usages.append(_usage_row(event, rows[sid]["company_id"]))
                continue
            rows[sid]["updated_at"] = event.timestamp
            changed.add(sid)
        for sid in erased_among(conn, sorted(changed)):
            rows[sid].update(ERASED_ANALYTICS)
            if rows[sid]["summary"] is not None:
                rows[sid]["summary"] = REDACTED_SUMMARY
            questions[sid] = []
        upsert(conn, analytics_sessions, [rows[sid] for sid in sorted(changed)], ("session_id",))
        self._replace_questions(conn, questions, rows)
        if usages:
            conn.execute(insert(ai_usage), usages)
            cost_rollup.add_usage(conn, usages)

    @staticmethod
    def _load(conn: Connection, ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
        found: dict[UUID, dict[str, Any]] = {}
        for i in range(0, len(ids), 500):
            query = select(analytics_sessions).where(
                analytics_sessions.c.session_id.in_(ids[i : i + 500])
            )
            for r in conn.execute(query).all():
                found[r.session_id] = r._asdict()
        return found

    @staticmethod
    def _replace_questions(
        conn: Connection, questions: dict[UUID, list[str]], rows: dict[UUID, dict[str, Any]]
    ) -> None:
        if not questions:
            return
        ids = list(questions)
        for i in range(0, len(ids), 500):
            conn.execute(
                delete(session_questions).where(
                    session_questions.c.session_id.in_(ids[i : i + 500])
                )
            )
        new = [
            {
                "session_id": sid,
                "position": n,
                "company_id": rows[sid]["company_id"],
                "question_key": question_key(text),
                "text": text,
                "start_time": rows[sid]["start_time"],
            }
            for sid, texts in questions.items()
            for n, text in enumerate(texts)
        ]
        if new:
            conn.execute(insert(session_questions), new)

    def forget(self) -> None:
        """Nothing is kept between pages."""

    def clear(self, conn: Connection) -> None:
        cost_rollup.clear(conn)
        conn.execute(delete(ai_usage))
        conn.execute(delete(session_questions))
        conn.execute(delete(analytics_sessions))


def _usage_row(event: Any, company_id: UUID) -> dict[str, Any]:
    u = event.usage
    return {
        "session_id": event.originator_id,
        "version": event.originator_version,
        "company_id": company_id,
        "stage": event.stage.value,
        "attempt": event.attempt,
        "provider": u.provider,
        "model_requested": u.model_requested,
        "model_returned": u.model_returned,
        "request_id": u.request_id,
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "cached_tokens": u.cached_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "total_tokens": u.total_tokens,
        "cost_eur": u.cost_eur,
        "price_source": u.price_source,
        "received_at": u.received_at,
    }
