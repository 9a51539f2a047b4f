"""The read-only pages: overview, sessions (and their CSV), one session, failures, companies,
costs. Each reads the projections (one session: its events) and renders a template."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse

from cli.web.chart import throughput_svg
from cli.web.filters import encode_cursor, parse
from cli.web.site import site
from processors.service.errors import ServiceError
from processors.service.history import session_at, session_history
from processors.service.pauses import switches
from projections.analytics_queries import Period, costs_every_way, known_total
from projections.budgets import budget_standing
from projections.overview_at import snapshot
from projections.overview_report import status_at
from projections.queries import (
    failed,
    import_warnings,
    list_companies,
    session_rows,
    status_report,
)
from projections.queries import overview as overview_counts
from projections.web_queries import (
    GROUP_SAMPLE,
    failure_groups,
    next_retries,
    ready_counts,
    session_page,
    throughput,
)
from projections.workers import database_now, workers

PAGE = 50
CSV_COLUMNS = (
    "session_id", "external_id", "company_id", "stage", "status", "attempt", "retry_count",
    "worker", "updated_at", "error_type", "error_message", "retry_at", "note",
)  # fmt: skip


def overview(request: Request) -> HTMLResponse:
    s = site(request)
    if request.query_params.get("at"):
        return overview_at(request, request.query_params["at"])
    with s.backend.engine.connect() as conn:
        report = status_report(conn)
        now = database_now(conn, s.backend.clock)
        daemons = workers(conn, now)
        chart = throughput(conn, now)
        ready = ready_counts(conn)
        retries = next_retries(conn)
        budgets = budget_standing(conn, now, s.installation_budget)
    paused, breakers = switches(s.backend)
    lags = s.backend.runner.lag()
    return s.render(
        request,
        "overview.html",
        report=report,
        daemons=daemons,
        chart=throughput_svg(chart),
        lags=lags,
        ready=ready,
        retries=retries,
        budgets=budgets,
        paused=paused,
        breakers=[b for b in breakers if b.state != "closed"],
        as_of_offered=s.log is not None,
        now=now,
        refresh=10,
    )


def overview_at(request: Request, text: str) -> HTMLResponse:
    """The stage × status counts and what needed work as they were at a time (`status --at`)."""
    s = site(request)
    if s.log is None:
        raise HTTPException(404, "the overview as of a time is not offered by this server")
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HTTPException(400, f"cannot read the time {text!r}: use 2026-10-01T12:00") from None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    with snapshot(s.backend.engine) as conn:
        report = status_at(conn, s.log, at, None, None)
    return s.render(request, "overview_at.html", report=report, at_text=text)


def sessions(request: Request) -> HTMLResponse:
    s = site(request)
    q = parse(request.query_params, s.backend.engine)
    with s.backend.engine.connect() as conn:
        page = session_page(conn, q.filter, q.sort, q.after, PAGE)
        names = {c.company_id: c.name for c in list_companies(conn)}
    return s.render(
        request,
        "sessions.html",
        rows=page.rows,
        next_cursor=encode_cursor(page.next) if page.next else None,
        first_page=q.after is None,
        params=q.params,
        companies=names,
    )


def sessions_csv(request: Request) -> Response:
    """Every row of the current filter, streamed page by page (keyset: constant cost each)."""
    s = site(request)
    q = parse(request.query_params, s.backend.engine)
    engine = s.backend.engine

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        out = csv.writer(buffer)
        out.writerow(CSV_COLUMNS)
        after = None
        while True:
            with engine.connect() as conn:
                page = session_page(conn, q.filter, q.sort, after, 1000)
            for r in page.rows:
                values = r.model_dump()
                out.writerow(["" if values[c] is None else values[c] for c in CSV_COLUMNS])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if page.next is None:
                return
            after = page.next

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="sessions.csv"'},
    )


def _at(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(400, f"at: {value!r} is not an ISO 8601 time") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def session(request: Request) -> HTMLResponse:
    s = site(request)
    key = request.path_params["session_id"]
    at = _at(request.query_params.get("at"))
    try:
        trail = session_history(s.backend, key)
        then = session_at(s.backend, key, at) if at is not None else None
    except ServiceError as e:
        raise HTTPException(404 if "unknown" in e.message else 400, e.message) from None
    sid: UUID = trail.session.session_id
    with s.backend.engine.connect() as conn:
        current = session_rows(conn, sid)
    content = None
    if s.auth.operator(request) is not None and trail.erased is None:
        # Personal data: only for a signed-in operator.
        content = s.backend.app.get_session(sid)
    usage = [e.data for e in trail.events if e.event == "AIUsageRecorded"]
    priced = [Decimal(str(u["cost_eur"])) for u in usage if u.get("cost_eur") is not None]
    cost = known_total(list(priced), len(usage))
    return s.render(
        request,
        "session.html",
        ref=trail.session,
        events=trail.events,
        current=current,
        then=then,
        at=at,
        content=content,
        erased=trail.erased,
        cost=cost,
        unpriced=len(usage) - len(priced),
        flash=request.query_params.get("flash"),
    )


def failures(request: Request) -> HTMLResponse:
    s = site(request)
    with s.backend.engine.connect() as conn:
        totals = {stage: counts["FAILED"] for stage, counts in overview_counts(conn).items()}
        grouped = failure_groups(conn, totals)
        recent = failed(conn, limit=100)
        names = {c.company_id: c.name for c in list_companies(conn)}
    return s.render(
        request,
        "failures.html",
        groups=grouped.groups,
        sampled=grouped.sampled,
        sample_size=GROUP_SAMPLE,
        recent=recent,
        companies=names,
        flash=request.query_params.get("flash"),
    )


def companies(request: Request) -> HTMLResponse:
    s = site(request)
    with s.backend.engine.connect() as conn:
        found = list_companies(conn)
        warnings = {w.company: w.message for w in import_warnings(conn)}
    return s.render(
        request,
        "companies.html",
        companies=found,
        warnings=warnings,
        flash=request.query_params.get("flash"),
    )


def _period(request: Request) -> tuple[Period, date | None, date | None]:
    def day(name: str) -> date | None:
        value = request.query_params.get(name, "").strip()
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise HTTPException(400, f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None

    first, last = day("from"), day("to")
    if first is None and last is None:  # the last 30 days: a day per row stays readable
        first = datetime.now(UTC).date() - timedelta(days=29)
    if first and last and last < first:
        raise HTTPException(400, "to is before from")
    return Period.of(first, last), first, last


def costs_page(request: Request) -> HTMLResponse:
    s = site(request)
    period, first, last = _period(request)
    with s.backend.engine.connect() as conn:
        reports = costs_every_way(conn, period)
    return s.render(request, "costs.html", reports=reports, first=first, last=last)


def login_form(request: Request) -> HTMLResponse:
    s = site(request)
    return s.render(request, "login.html", next=_local(request.query_params.get("next")))


def _local(target: str | None) -> str:
    """Only a path on this site (never ``//host``): a login must not redirect elsewhere."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"
