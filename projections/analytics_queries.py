"""Analytics reports: what the original dashboard showed, from the analytics read model."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Connection, and_, func, not_, select

from projections.schema import (
    ai_cost_daily,
    ai_requests,
    ai_usage,
    analytics_sessions,
    companies,
    session_questions,
    session_stage_status,
)
from projections.store import money_sum

asess = analytics_sessions

OFFLINE_PROVIDER = "offline"
"""The provider the offline analyser records (``processors.ai.offline.PROVIDER``; this
layer does not import processors)."""


class Period(BaseModel):
    start: datetime | None
    end: datetime | None

    @classmethod
    def of(cls, first: date | None, last: date | None) -> Period:
        """Whole days in UTC, both ends included."""
        return cls(
            start=datetime.combine(first, time(), UTC) if first else None,
            end=datetime.combine(last + timedelta(days=1), time(), UTC) if last else None,
        )


def _day(conn: Connection, column: Any) -> ColumnElement[Any]:
    if conn.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.substr(column, 1, 10)


def _seconds(conn: Connection) -> ColumnElement[Any]:
    """Session length in seconds, computed by the database."""
    if conn.dialect.name == "postgresql":
        return func.extract("epoch", asess.c.end_time - asess.c.start_time)
    return (func.julianday(asess.c.end_time) - func.julianday(asess.c.start_time)) * 86400.0


def _within(column: Any, period: Period) -> list[ColumnElement[bool]]:
    conditions = []
    if period.start:
        conditions.append(column >= period.start)
    if period.end:
        conditions.append(column < period.end)
    return conditions


class CostRow(BaseModel):
    key: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    total_tokens: int
    cost_eur: Decimal | None
    """The exact sum of the known costs; None (unknown) when no request here has a price."""
    unknown_cost_requests: int
    """Requests whose model has no price: not in ``cost_eur``."""


class CostReport(BaseModel):
    by: str
    company: str | None
    start: datetime | None
    end: datetime | None
    requests: int
    total_tokens: int
    total_cost_eur: Decimal | None
    """The exact sum of the known costs; None when there were requests and none had a price."""
    unknown_cost_requests: int
    rows: list[CostRow]
    requests_answer_lost: int = 0
    """Requests sent (their intent is stored) whose attempt ended without their answer being
    recorded: a crash or a timeout after the provider may have billed them."""
    cost_eur_answer_lost_estimated: Decimal | None = Decimal(0)
    """Their cost at its upper bound (estimated prompt plus the whole output allowance); None
    when a model among them has no price."""


def known_total(amounts: list[Decimal | None], requests: int) -> Decimal | None:
    """Sum of the known amounts; unknown (None) only when requests were made and none is known."""
    known = [a for a in amounts if a is not None]
    if not known and requests:
        return None
    return sum(known, Decimal(0))


def costs(
    conn: Connection,
    by: Literal["day", "model", "company"],
    period: Period,
    company_id: UUID | None = None,
    company: str | None = None,
) -> CostReport:
    if by == "day":
        key: Any = _day(conn, ai_usage.c.received_at)
    elif by == "model":
        key = func.coalesce(ai_usage.c.model_returned, ai_usage.c.model_requested)
    else:
        key = companies.c.name
    query = (
        select(
            key.label("key"),
            func.count().label("requests"),
            func.sum(ai_usage.c.prompt_tokens).label("prompt_tokens"),
            func.sum(ai_usage.c.completion_tokens).label("completion_tokens"),
            func.sum(ai_usage.c.cached_tokens).label("cached_tokens"),
            func.sum(ai_usage.c.total_tokens).label("total_tokens"),
            money_sum(conn, ai_usage.c.cost_eur).label("cost_eur"),
            func.sum(func.cast(ai_usage.c.cost_eur.is_(None), ai_usage.c.attempt.type)).label(
                "unknown"
            ),
        )
        .join(companies, companies.c.company_id == ai_usage.c.company_id)
        .where(*_within(ai_usage.c.received_at, period))
        .group_by(key)
        .order_by(key)
    )
    if company_id is not None:
        query = query.where(ai_usage.c.company_id == company_id)
    rows = [
        CostRow(
            key=str(r.key),
            requests=int(r.requests),
            prompt_tokens=int(r.prompt_tokens or 0),
            completion_tokens=int(r.completion_tokens or 0),
            cached_tokens=int(r.cached_tokens or 0),
            total_tokens=int(r.total_tokens or 0),
            cost_eur=r.cost_eur,
            unknown_cost_requests=int(r.unknown or 0),
        )
        for r in conn.execute(query).all()
    ]
    return _report(rows, by, company, period, _answers_lost(conn, period, company_id))


def _report(
    rows: list[CostRow],
    by: str,
    company: str | None,
    period: Period,
    lost: tuple[int, Decimal | None],
) -> CostReport:
    """The totals of ``rows``, beside the requests whose answer was lost."""
    requests = sum(r.requests for r in rows)
    return CostReport(
        requests_answer_lost=lost[0],
        cost_eur_answer_lost_estimated=lost[1],
        by=by,
        company=company,
        start=period.start,
        end=period.end,
        requests=requests,
        total_tokens=sum(r.total_tokens for r in rows),
        total_cost_eur=known_total([r.cost_eur for r in rows], requests),
        unknown_cost_requests=sum(r.unknown_cost_requests for r in rows),
        rows=rows,
    )


def costs_every_way(
    conn: Connection, period: Period
) -> dict[Literal["company", "model", "day"], CostReport]:
    """`costs` by company, by model and by day at once, for whole UTC days (``Period.of``),
    from the `ai_cost_daily` rollup: a few rows per company, model and day however many
    requests were made (grouping the requests themselves took 1.8 s at a million)."""
    d = ai_cost_daily.c
    query = select(ai_cost_daily, companies.c.name.label("company")).join(
        companies, companies.c.company_id == d.company_id
    )
    if period.start is not None:
        query = query.where(d.day >= period.start.astimezone(UTC).date().isoformat())
    if period.end is not None:
        query = query.where(d.day < period.end.astimezone(UTC).date().isoformat())
    groups = conn.execute(query).all()
    lost = _answers_lost(conn, period, None)
    reports: dict[Literal["company", "model", "day"], CostReport] = {}
    for by in ("company", "model", "day"):
        rolled: dict[str, CostRow] = {}
        for g in groups:
            key = str(getattr(g, by))
            row = rolled.setdefault(key, CostRow(key=key, requests=0, prompt_tokens=0,
                completion_tokens=0, cached_tokens=0, total_tokens=0, cost_eur=None,
                unknown_cost_requests=0))  # fmt: skip
            row.requests += int(g.requests)
            row.prompt_tokens += int(g.prompt_tokens)
            row.completion_tokens += int(g.completion_tokens)
            row.cached_tokens += int(g.cached_tokens)
            row.total_tokens += int(g.total_tokens)
            row.unknown_cost_requests += int(g.unknown_cost_requests)
            if g.cost_eur is not None:
                row.cost_eur = (row.cost_eur or Decimal(0)) + Decimal(g.cost_eur)
        reports[by] = _report([rolled[k] for k in sorted(rolled)], by, None, period, lost)
    return reports


def _answers_lost(
    conn: Connection, period: Period, company_id: UUID | None
) -> tuple[int, Decimal | None]:
    """Intents without an answer whose attempt is over (the stage is no longer running that
    attempt): sent, answer lost."""
    sss = session_stage_status
    req = ai_requests
    query = (
        select(
            func.count().label("n"),
            money_sum(conn, req.c.cost_eur_estimated).label("eur"),
            func.count(req.c.cost_eur_estimated).label("priced"),
        )
        .select_from(
            req.join(sss, and_(sss.c.session_id == req.c.session_id, sss.c.stage == req.c.stage))
        )
        .where(
            req.c.state == "sent",
            not_(and_(sss.c.status == "IN_PROGRESS", sss.c.attempt == req.c.attempt)),
            *_within(req.c.sent_at, period),
        )
    )
    if company_id is not None:
        query = query.where(sss.c.company_id == company_id)
    row = conn.execute(query).one()
    n = int(row.n or 0)
    if n and int(row.priced or 0) < n:
        return n, None
    return n, Decimal(row.eur or 0)


class QuestionCount(BaseModel):
    company: str
    question: str
    count: int
    last_seen: datetime | None


def top_questions(
    conn: Connection, company_id: UUID | None, top: int, period: Period | None = None
) -> list[QuestionCount]:
    """The per-company catalogue: questions equal up to case and spacing count together."""
    sq = session_questions
    query = (
        select(
            companies.c.name,
            func.min(sq.c.text).label("text"),
            func.count().label("n"),
            func.max(sq.c.start_time).label("last_seen"),
        )
        .join(companies, companies.c.company_id == sq.c.company_id)
        .group_by(companies.c.name, sq.c.question_key)
        .order_by(func.count().desc(), func.min(sq.c.text))
        .limit(top)
    )
    if company_id is not None:
        query = query.where(sq.c.company_id == company_id)
    if period is not None:
        query = query.where(*_within(sq.c.start_time, period))
    return [
        QuestionCount(company=r.name, question=r.text, count=int(r.n), last_seen=r.last_seen)
        for r in conn.execute(query).all()
    ]


class AnalyticsReport(BaseModel):
    company: str | None
    start: datetime | None
    end: datetime | None
    total_sessions: int
    analysed_sessions: int
    analyses_by_provider: dict[str, int]
    """Each analysed session's current analysis, by who made it (``openai``, ``offline``)."""
    analyses_offline: int
    """How many of them came from the offline analyser (rules, not an LLM)."""
    sessions_per_day: dict[str, int]
    sentiment: dict[str, int]
    category: dict[str, int]
    language: dict[str, int]
    country: dict[str, int]
    escalated_count: int
    escalated_rate: float | None
    forwarded_hr_count: int
    forwarded_hr_rate: float | None
    avg_response_time_s: float | None
    avg_session_length_s: float | None
    top_questions: list[QuestionCount]
    ai_cost_per_day: dict[str, Decimal | None]
    ai_cost_by_model: dict[str, Decimal | None]
    ai_requests: int
    ai_cost_eur: Decimal | None
    """All AI requests' known costs, exact; None when none of them has a price."""
    ai_unknown_cost_requests: int
    upstream_tokens: int
    upstream_tokens_eur: Decimal


def analytics_report(
    conn: Connection, period: Period, company_id: UUID | None = None, company: str | None = None
) -> AnalyticsReport:
    where = _within(asess.c.start_time, period)
    if company_id is not None:
        where.append(asess.c.company_id == company_id)

    def counts(column: Any) -> dict[str, int]:
        query = select(column, func.count()).where(*where, column.is_not(None)).group_by(column)
        return {str(k): int(n) for k, n in conn.execute(query).all()}

    totals = conn.execute(
        select(
            func.count(),
            func.count(asess.c.sentiment),
            func.sum(func.cast(asess.c.escalated, asess.c.messages_sent.type)),
            func.sum(func.cast(asess.c.forwarded_hr, asess.c.messages_sent.type)),
            func.avg(asess.c.avg_response_time),
            func.sum(asess.c.tokens),
            money_sum(conn, asess.c.tokens_eur),
        ).where(*where)
    ).one()
    total, analysed, escalated, forwarded, avg_rt, tokens, tokens_eur = totals
    avg_length = conn.execute(select(func.avg(_seconds(conn))).where(*where)).scalar()
    day = _day(conn, asess.c.start_time)
    by_day = select(day, func.count()).where(*where).group_by(day).order_by(day)
    per_day = {str(k): int(n) for k, n in conn.execute(by_day)}
    by_provider = counts(asess.c.analysis_provider)
    cost_period = costs(conn, "day", period, company_id)
    cost_model = costs(conn, "model", period, company_id)
    return AnalyticsReport(
        company=company,
        start=period.start,
        end=period.end,
        total_sessions=int(total),
        analysed_sessions=int(analysed),
        analyses_by_provider=by_provider,
        analyses_offline=by_provider.get(OFFLINE_PROVIDER, 0),
        sessions_per_day=per_day,
        sentiment=counts(asess.c.sentiment),
        category=counts(asess.c.category),
        language=counts(func.coalesce(asess.c.analysis_language, asess.c.language)),
        country=counts(asess.c.country),
        escalated_count=int(escalated or 0),
        escalated_rate=round(int(escalated or 0) / analysed, 4) if analysed else None,
        forwarded_hr_count=int(forwarded or 0),
        forwarded_hr_rate=round(int(forwarded or 0) / analysed, 4) if analysed else None,
        avg_response_time_s=round(float(avg_rt), 3) if avg_rt is not None else None,
        avg_session_length_s=round(float(avg_length), 1) if avg_length is not None else None,
        top_questions=top_questions(conn, company_id, 5, period),
        ai_cost_per_day={r.key: r.cost_eur for r in cost_period.rows},
        ai_cost_by_model={r.key: r.cost_eur for r in cost_model.rows},
        ai_requests=cost_period.requests,
        ai_cost_eur=cost_period.total_cost_eur,
        ai_unknown_cost_requests=cost_period.unknown_cost_requests,
        upstream_tokens=int(tokens or 0),
        upstream_tokens_eur=tokens_eur if tokens_eur is not None else Decimal(0),
    )


def analysis_response_means(
    conn: Connection, company_id: UUID | None, last: int = 1000
) -> tuple[int, float, float]:
    """(responses, mean prompt tokens, mean completion tokens) over the last ``last`` paid
    analysis responses of the company (or of all companies), for cost estimates. The offline
    analyser's zero-token records are left out: they would make paid work look free."""
    recent = (
        select(ai_usage.c.prompt_tokens, ai_usage.c.completion_tokens)
        .where(ai_usage.c.stage == "AI_ANALYSIS", ai_usage.c.provider != OFFLINE_PROVIDER)
        .order_by(ai_usage.c.received_at.desc())
        .limit(last)
    )
    if company_id is not None:
        recent = recent.where(ai_usage.c.company_id == company_id)
    sub = recent.subquery()
    n, prompt, completion = conn.execute(
        select(func.count(), func.avg(sub.c.prompt_tokens), func.avg(sub.c.completion_tokens))
    ).one()
    return int(n), float(prompt or 0), float(completion or 0)
