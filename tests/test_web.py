"""`livedash serve` over HTTP (Starlette's TestClient, in-process) against a real pipeline on
SQLite and PostgreSQL: pages, filters, keyset pages, CSV, sign-in, CSRF, actions as events."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from starlette.testclient import TestClient

from cli.runtime import Runtime
from cli.web.app import build_app
from cli.web.site import _eur
from domain.budget import AIBudget, BudgetPeriod
from domain.payloads import AIUsage
from domain.stages import Stage, Status
from processors.clock import utc_now
from processors.net.netguard import is_loopback
from processors.service.backend import Backend
from processors.service.companies import CompanySettings, update_company
from processors.service.lookup import find_session
from processors.service.pauses import pause_stage, resume_stage
from projections import cost_rollup
from projections.analytics_queries import Period, costs, costs_every_way
from projections.overview_at import LogSource
from projections.queries import overview
from projections.schema import ai_cost_daily
from projections.schema import sessions as sessions_table
from projections.web_queries import SessionFilter, session_page
from tests.conftest import REPO, Livedash, fresh_pg_database
from tests.web_seed import COMPANY, Seeded, seed

TOKEN = "s3cret-token"


@dataclass
class Web:
    seeded: Seeded
    backend: Backend

    def client(self, token: str | None = TOKEN) -> TestClient:
        return TestClient(build_app(self.backend, token), follow_redirects=False)

    def session_id(self, external_id: str) -> str:
        return str(find_session(self.backend.engine, external_id).session_id)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def web(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    folder = tmp_path_factory.mktemp("web")
    if request.param == "sqlite":
        yield from _web(f"sqlite:///{folder / 'web.db'}", folder)
    else:
        with fresh_pg_database() as url:
            yield from _web(url, folder)


def _web(url: str, folder: Path) -> Iterator[Web]:
    seeded = seed(url, folder / "data")
    with Runtime.open(url) as rt:
        yield Web(seeded, Backend(app=rt.app, engine=rt.engine, runner=rt.runner, clock=utc_now))


def sign_in(client: TestClient, name: str = "alice") -> str:
    """Signs in and returns the CSRF token the pages now carry."""
    response = client.post("/login", data={"name": name, "token": TOKEN, "next": "/failures"})
    assert response.status_code == 303, response.text
    page = client.get("/failures").text
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "a signed-in page carries the CSRF token"
    return found.group(1)


def test_every_page_renders_with_security_headers(web: Web) -> None:
    client = web.client()
    sid = web.session_id(web.seeded.completed_external_id)
    for path in (
        "/",
        "/sessions",
        "/failures",
        "/companies",
        "/costs",
        "/login",
        f"/sessions/{sid}",
    ):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "<script>" not in response.text, "no inline script (the CSP forbids it)"
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/refresh.js").status_code == 200


def test_overview_counts_link_to_the_sessions_behind_them(web: Web) -> None:
    client = web.client()
    page = client.get("/").text
    assert "<svg" in page and "TRANSCRIPT_FETCH" in page
    links = re.findall(r'<a class="count status-(\w+)" href="(/sessions\?[^"]+)">(\d+)</a>', page)
    assert links, "each non-zero count is a link"
    for status, href, count in links:
        rows = client.get(href.replace("&amp;", "&")).text
        shown = rows.count('class="session-link"')
        assert shown == min(int(count), 50), (href, status)


def test_sessions_filter_by_stage_status_error_type_and_company(web: Web) -> None:
    client = web.client()
    page = client.get(
        "/sessions", params={"stage": "TRANSCRIPT_FETCH", "status": "FAILED", "company": COMPANY}
    ).text
    assert web.seeded.failed_external_id in page
    assert web.seeded.completed_external_id not in page
    by_type = client.get("/sessions", params={"error_type": "not_found"}).text
    assert web.seeded.failed_external_id in by_type
    none = client.get(
        "/sessions", params={"status": "FAILED", "from": "2000-01-01", "to": "2000-01-02"}
    )
    assert "No session matches" in none.text
    bad = client.get("/sessions", params={"status": "BROKEN"})
    assert bad.status_code == 400 and "unknown status" in bad.text
    assert client.get("/sessions", params={"company": "Nobody"}).status_code == 400


def test_keyset_pages_cover_every_row_once_in_order(web: Web) -> None:
    for sort in ("updated_desc", "updated_asc"):
        with web.backend.engine.connect() as conn:
            everything = session_page(conn, SessionFilter(), sort, None, 1000).rows
            total = sum(overview(conn)[Stage.CSV_IMPORT.value].values())
            seen, after = [], None
            while True:
                page = session_page(conn, SessionFilter(), sort, after, 5)
                seen.extend(page.rows)
                if page.next is None:
                    break
                after = page.next
        assert [r.session_id for r in seen] == [r.session_id for r in everything]
        assert len(everything) == total > 10, "one row per session, over several pages"
        times = [r.updated_at for r in seen]
        assert times == sorted(times, reverse=sort == "updated_desc")


def test_csv_export_holds_exactly_the_current_filter(web: Web) -> None:
    client = web.client()
    response = client.get(
        "/sessions.csv", params={"stage": "QUESTION_EXTRACTION", "status": "COMPLETED"}
    )
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    with web.backend.engine.connect() as conn:
        expected = session_page(
            conn,
            SessionFilter(stage=Stage.QUESTION_EXTRACTION, status=Status.COMPLETED),
            limit=1000,
        ).rows
    assert {r["session_id"] for r in rows} == {str(r.session_id) for r in expected}
    assert {r["status"] for r in rows} == {"COMPLETED"}


def test_session_page_timeline_as_of_and_private_data(web: Web) -> None:
    client = web.client()
    sid = web.session_id(web.seeded.completed_external_id)
    page = client.get(f"/sessions/{sid}").text
    for event in ("Imported", "StageStarted", "StageCompleted", "QuestionsExtracted"):
        assert f"<strong>{event}</strong>" in page
    assert "worker web-seed" in page and "lease until" in page
    assert 'id="private"' in page and 'id="transcript"' not in page
    at = re.search(r'href="/sessions/[^"?]+\?at=([^"]+)">as of', page)
    assert at
    then = client.get(f"/sessions/{sid}?at={at.group(1)}").text
    assert "as of" in then and "PENDING" in then
    assert client.get(f"/sessions/{sid}?at=yesterday").status_code == 400
    assert client.get("/sessions/no-such-session").status_code == 404
    sign_in(client)
    signed = client.get(f"/sessions/{sid}").text
    assert 'id="transcript"' in signed and 'id="analysis"' in signed


def test_read_only_server_refuses_actions_and_sign_in(web: Web) -> None:
    client = web.client(token=None)
    assert "read-only" in client.get("/").text
    sid = web.session_id(web.seeded.failed_external_id)
    refused = client.post(f"/sessions/{sid}/retry", data={"reason": "x", "csrf": ""})
    assert refused.status_code == 403
    assert client.post("/login", data={"name": "a", "token": ""}).status_code == 403
    assert (
        client.post("/companies/status", data={"name": COMPANY, "status": "SUSPENDED"}).status_code
        == 403
    )


def test_sign_in_sets_a_strict_http_only_cookie_and_a_wrong_token_is_refused(web: Web) -> None:
    client = web.client()
    wrong = client.post("/login", data={"name": "mallory", "token": "guess"})
    assert wrong.status_code == 401 and "wrong token" in wrong.text
    ok = client.post("/login", data={"name": "alice", "token": TOKEN, "next": "//evil.example/"})
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert 'id="operator">alice<' in client.get("/").text
    forged = web.client()
    forged.cookies.set("livedash_operator", "YWxpY2U.9999999999.deadbeef")
    assert "Sign in" in forged.get("/").text


def test_retry_needs_the_csrf_token_and_is_recorded_with_the_operator(web: Web) -> None:
    client = web.client()
    csrf = sign_in(client, "alice")
    sid = web.session_id(web.seeded.failed_external_id)
    no_csrf = client.post(f"/sessions/{sid}/retry", data={"reason": "fixed", "csrf": "0"})
    assert no_csrf.status_code == 403
    no_reason = client.post(f"/sessions/{sid}/retry", data={"reason": " ", "csrf": csrf})
    assert no_reason.status_code == 400
    done = client.post(
        f"/sessions/{sid}/retry",
        data={"reason": "transcript restored", "csrf": csrf, "stage": "TRANSCRIPT_FETCH"},
    )
    assert done.status_code == 303
    page = client.get(done.headers["location"]).text
    assert "1 sent back to PENDING" in page
    assert '<span class="reason">transcript restored</span>' in page
    assert '<span class="actor">web:alice</span>' in page


def test_group_and_selection_retry_and_suspend_resume(web: Web) -> None:
    client = web.client()
    csrf = sign_in(client, "bob")
    groups = client.get("/failures").text
    assert 'class="inline group-retry"' in groups or "Nothing failed" in groups
    group = client.post(
        "/failures/retry",
        data={
            "group": "1",
            "stage": "TRANSCRIPT_FETCH",
            "error_type": "empty",
            "reason": "r",
            "csrf": csrf,
        },
    )
    assert group.status_code == 303 and "sent+back" in group.headers["location"].replace("%20", "+")
    none = client.post("/failures/retry", data={"reason": "r", "csrf": csrf})
    assert none.status_code == 400
    suspended = client.post(
        "/companies/status",
        data={"name": COMPANY, "status": "SUSPENDED", "reason": "invoice unpaid", "csrf": csrf},
    )
    assert suspended.status_code == 303
    page = client.get("/companies").text
    assert "SUSPENDED" in page and "invoice unpaid" in page and "Resume" in page
    events = web.backend.app.events.get(
        find_session(web.backend.engine, web.seeded.empty_external_id).session_id
    )
    assert any(getattr(e, "actor", None) == "web:bob" for e in events)
    resumed = client.post(
        "/companies/status",
        data={"name": COMPANY, "status": "ACTIVE", "reason": "paid", "csrf": csrf},
    )
    assert resumed.status_code == 303
    assert "Suspend" in client.get("/companies").text


def test_unknown_cost_is_shown_as_unknown_and_loopback_is_recognised() -> None:
    assert _eur(None) == "unknown"
    assert _eur(None, 3) == "unknown"
    assert _eur(__import__("decimal").Decimal("0.0012"), 2) == "€0.0012 + 2 unknown"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_serve_warns_when_binding_beyond_loopback_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
    run = Livedash(
        f"sqlite:///{tmp_path / 'missing.db'}", tmp_path, {**env, "PYTHONPATH": str(REPO)}
    )
    result = run("serve", "--host", "0.0.0.0", check=False)
    assert "not a loopback address" in result.stderr and "LIVEDASH_ADMIN_TOKEN" in result.stderr
    assert result.code == 3  # then refuses the missing database, before binding anything


def test_costs_every_way_agrees_with_the_costs_report(web: Web) -> None:
    """The Costs page's rollup (`ai_cost_daily`, kept by the analytics projection) says what
    `livedash costs --by X` says from every request, unknown prices included (an unpriced
    model is unknown, never zero); and a rollup derived afresh from `ai_usage` is the same."""
    ref = find_session(web.backend.engine, web.seeded.completed_external_id)
    session = web.backend.app.get_session(ref.session_id)
    now = utc_now()
    for i, (model, cost) in enumerate(
        [("gpt-4o-mini", Decimal("0.0001")), ("gpt-4o-mini", Decimal("0.0002")), ("mystery", None)]
    ):
        at = now - timedelta(days=i)
        usage = AIUsage(
            provider="openai", model_requested=model, model_returned=model, request_id=None,
            prompt_tokens=10, completion_tokens=5, cached_tokens=0, reasoning_tokens=0,
            total_tokens=15, cost_usd=None, cost_eur=cost, price_source="test",
            response_text=None, requested_at=at, received_at=at,
        )  # fmt: skip
        session.record_ai_usage(Stage.AI_ANALYSIS, 1, usage)
    web.backend.app.save(session)
    web.backend.catch_up()
    whole = Period.of(None, None)
    with web.backend.engine.connect() as conn:
        every = costs_every_way(conn, whole)
        for by in ("company", "model", "day"):
            assert every[by] == costs(conn, by, whole)
    assert every["model"].unknown_cost_requests == 1
    with web.backend.engine.begin() as conn:
        kept = conn.execute(select(ai_cost_daily)).all()
        cost_rollup.clear(conn)
        cost_rollup.backfill(conn)
        assert sorted(conn.execute(select(ai_cost_daily)).all()) == sorted(kept)
    page = web.client().get("/costs").text
    assert "mystery" in page and "unknown" in page and "€0.0003" in page


def test_overview_names_the_next_scheduled_retries(web: Web) -> None:
    ref = find_session(web.backend.engine, web.seeded.failed_external_id)
    session = web.backend.app.get_session(ref.session_id)
    now = utc_now()
    if session.stages[Stage.TRANSCRIPT_FETCH].status in (Status.FAILED, Status.SKIPPED):
        session.reset_stage(Stage.TRANSCRIPT_FETCH, "test", "tester", now)
    attempt = session.start_stage(Stage.TRANSCRIPT_FETCH, "w1", now + timedelta(minutes=5), now)
    later = now + timedelta(hours=1)
    session.fail_stage(Stage.TRANSCRIPT_FETCH, attempt, "timeout", "slow", True, later, now)
    web.backend.app.save(session)
    web.backend.catch_up()
    page = web.client().get("/").text
    assert "next scheduled retries" in page
    assert f"{web.seeded.failed_external_id}</a> (timeout)" in page


def test_serve_answers_metrics_health_and_readiness(web: Web) -> None:
    client = web.client(None)
    assert client.get("/healthz").json()["status"] == "alive"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    page = client.get("/metrics")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(page.text)}
    assert families["livedash_store_up"].samples[0].value == 1.0
    samples = families["livedash_sessions"].samples
    assert all("worker" not in s.labels for s in samples)  # serve's gauges: no worker label
    with web.backend.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(sessions_table)).scalar()
    for stage in ("CSV_IMPORT", "QUESTION_EXTRACTION"):  # every session counted once a stage
        assert sum(s.value for s in samples if s.labels["stage"] == stage) == total > 0


def test_overview_says_what_holds_work_back(web: Web) -> None:
    """A pause, a company budget and the installation's budget, as `status` says them."""
    pause_stage(web.backend, Stage.AI_ANALYSIS, COMPANY, "provider incident 42", "ops-bob")
    update_company(web.backend, COMPANY, CompanySettings(ai_budget="0/day"), "ops-bob")
    try:
        cap = AIBudget(Decimal("25"), BudgetPeriod.MONTH)
        app = build_app(web.backend, None, cap)
        page = TestClient(app, follow_redirects=False).get("/").text
        assert "paused:" in page and "provider incident 42" in page and "ops-bob" in page
        assert f"budget reached: <strong>{COMPANY}</strong>" in page  # 0/day: reached at once
        assert "AI budget <strong>installation</strong>" in page and "of 25/month" in page
    finally:
        resume_stage(web.backend, Stage.AI_ANALYSIS, COMPANY, "over", "ops-bob")
        update_company(web.backend, COMPANY, CompanySettings(ai_budget="none"), "ops-bob")
    assert "paused:" not in web.client(None).get("/").text


def _log(web: Web) -> LogSource:
    postgres = web.backend.engine.dialect.name == "postgresql"
    table = "livedash_events" if postgres else "stored_events"
    return LogSource(table, None, web.backend.app.mapper)


def test_overview_as_of_a_time_is_the_past_and_the_present(web: Web) -> None:
    client = TestClient(build_app(web.backend, None, None, _log(web)), follow_redirects=False)
    assert 'id="at-form"' in client.get("/").text
    before = client.get("/", params={"at": "2000-01-01T00:00:00"})
    assert before.status_code == 200 and "0 sessions" in before.text
    now = datetime.now(UTC).isoformat()
    page = client.get("/", params={"at": now}).text
    with web.backend.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(sessions_table)).scalar()
    assert f"{total} sessions" in page and "as of" in page
    assert client.get("/", params={"at": "yesterday"}).status_code == 400
    assert "at-form" not in web.client(None).get("/").text  # no log given: not offered
