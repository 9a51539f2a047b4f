"""`livedash run --metrics-port`: the real daemon, scraped as Prometheus would scrape it.

One daemon per backend (one test, checked three ways: a start costs seconds, and split tests
could each start their own under xdist) works real sessions: transcripts
from a local HTTP server, analyses from the local OpenAI-compatible server, one transcript
missing. Its `/metrics` is parsed with prometheus-client's own parser; on PostgreSQL the
daemon reaches the database through a TCP proxy the test cuts, and `/readyz` must follow.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from domain.company import Company
from domain.session import Session
from domain.stages import WORKER_STAGES, Stage
from processors.clock import utc_now
from processors.runtime.metrics import DaemonMetrics
from projections.health import HealthEndpoints, installation_registry
from projections.metrics_collector import StoreGauges
from tests.conftest import LIVEDASH, REPO, fresh_pg_database
from tests.factories import row
from tests.harness import runtime
from tests.openai_server import FakeOpenAI
from tests.servers import RouteServer, text
from tests.tcp_proxy import TcpProxy

CHAT = (
    "[01.10.2026 10:00:05] User: Hallo, ik ben ziek. Wie moet ik bellen?\n"
    "[01.10.2026 10:00:09] Assistant: Meld je ziek bij je leidinggevende.\n"
)
GOOD = 3
"""Sessions whose transcript exists (one more has none: its fetch fails)."""
MODEL = "gpt-4o-mini"
T = TypeVar("T")


@dataclass
class Running:
    backend: str
    base: str
    worker: str
    proxy: TcpProxy | None
    failed_error_type: str


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Polls ``probe`` until it returns something (not None, not False) or the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def scrape(base: str) -> list[Sample]:
    code, body, content_type = get(base + "/metrics")
    assert code == 200 and content_type.startswith("text/plain"), (code, content_type)
    return [s for f in text_string_to_metric_families(body.decode()) for s in f.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def start_daemon(
    url: str, workdir: Path, worker: str, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    log = (workdir / f"{worker}.log").open("wb")
    return subprocess.Popen(
        [*LIVEDASH, "run", "--metrics-port", "0", "--worker-id", worker, "--poll-interval",
         "0.1", "--csv-interval", "0", "--grace", "2"],
        cwd=workdir,
        env={**env, "LIVEDASH_DATABASE_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )  # fmt: skip


def listening_at(log: Path, proc: subprocess.Popen[bytes]) -> str | None:
    assert proc.poll() is None, f"the daemon exited {proc.returncode}:\n{log.read_text()}"
    for line in log.read_text().splitlines():
        if line.startswith("{") and json.loads(line)["event"] == "metrics_listening":
            return str(json.loads(line)["url"])
    return None


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def test_a_running_daemon_is_scraped_and_checked(running: Running) -> None:
    check_counters_moved_as_the_work_was_stored(running)
    check_installation_gauges_come_from_the_projections(running)
    check_healthz_and_readyz_follow_the_database(running)


@pytest.fixture(params=["sqlite", "postgres"])
def running(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Running]:
    backend: str = request.param
    workdir = tmp_path
    with ExitStack() as stack:
        if backend == "sqlite":
            url = daemon_url = f"sqlite:///{workdir / 'livedash.db'}"
            proxy = None
        else:
            url = stack.enter_context(fresh_pg_database())
            where = urlsplit(url)
            proxy = stack.enter_context(TcpProxy(where.hostname or "127.0.0.1", where.port or 5432))
            daemon_url = url.replace(f"{where.hostname}:{where.port}", f"127.0.0.1:{proxy.port}")
        chats = stack.enter_context(RouteServer({f"/c{i}.txt": text(CHAT) for i in range(GOOD)}))
        ai = stack.enter_context(FakeOpenAI(api_key="sk-metrics"))
        with runtime(url) as rt:
            company = rt.app.register_company(Company.register("Acme", "x.csv", utc_now()))
            urls = [chats.url(f"/c{i}.txt") for i in range(GOOD)] + [chats.url("/gone.txt")]
            sessions = [
                Session.import_row(company.id, row(external_id=f"s{i}", url=u), "x.csv", utc_now())
                for i, u in enumerate(urls)
            ]
            rt.app.save_batch(sessions)
            rt.runner.catch_up()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
        env.update(
            PYTHONPATH=str(REPO),
            OPENAI_API_KEY="sk-metrics",
            OPENAI_BASE_URL=ai.base_url,
            LIVEDASH_AI_MODEL=MODEL,
            LIVEDASH_FETCH_ALLOW_HOSTS="127.0.0.1",
            LIVEDASH_AI_RATE_LIMITS="*=6000/",
        )
        worker = f"metrics-test-{backend}"
        proc = start_daemon(daemon_url, workdir, worker, env)
        stack.callback(stop, proc)
        log = workdir / f"{worker}.log"
        base = wait_for("the metrics server", lambda: listening_at(log, proc))
        wait_for(
            "every session's last stage",
            lambda: value(scrape(base), "livedash_stage_completed_total",
                          stage="QUESTION_EXTRACTION") >= GOOD,
        )  # fmt: skip
        with runtime(url, create=False) as rt:
            gone = rt.app.find_session(sessions[-1].id)
            assert gone is not None
            error_type = gone.stages[Stage.TRANSCRIPT_FETCH].error_type
        assert error_type is not None
        yield Running(backend, base, worker, proxy, error_type)


def check_counters_moved_as_the_work_was_stored(running: Running) -> None:
    samples = scrape(running.base)
    for stage in WORKER_STAGES:
        assert value(samples, "livedash_stage_completed_total", stage=stage.value) == GOOD, stage
        assert value(samples, "livedash_stage_released_total", stage=stage.value) == 0
        assert value(samples, "livedash_stage_lease_expired_total", stage=stage.value) == 0
        done = value(samples, "livedash_stage_duration_seconds_count", stage=stage.value)
        assert done == value(samples, "livedash_stage_started_total", stage=stage.value)
        assert value(samples, "livedash_stage_in_flight", stage=stage.value) == 0
    fetch = Stage.TRANSCRIPT_FETCH.value
    assert value(samples, "livedash_stage_started_total", stage=fetch) == GOOD + 1
    assert value(samples, "livedash_stage_failed_total", stage=fetch) == 1
    assert (
        value(
            samples,
            "livedash_stage_failed_total",
            stage=fetch,
            error_type=running.failed_error_type,
        )
        == 1
    )
    # One paid answer per analysis, with its tokens and its price.
    assert value(samples, "livedash_llm_requests_total", model=MODEL) == GOOD
    assert value(samples, "livedash_llm_tokens_total", model=MODEL, kind="prompt") > 0
    assert value(samples, "livedash_llm_tokens_total", model=MODEL, kind="completion") > 0
    assert value(samples, "livedash_llm_cost_eur_total", model=MODEL) > 0
    assert value(samples, "livedash_llm_unpriced_requests_total") == 0
    assert value(samples, "livedash_loop_turn_duration_seconds_count") > 0
    assert value(samples, "process_resident_memory_bytes") > 10_000_000
    # Every sample carries the daemon's worker id.
    assert {s.labels.get("worker") for s in samples} == {running.worker}


def check_installation_gauges_come_from_the_projections(running: Running) -> None:
    def settled() -> list[Sample] | None:
        samples = scrape(running.base)
        last = value(samples, "livedash_sessions", stage="QUESTION_EXTRACTION", status="COMPLETED")
        return samples if last == GOOD else None

    samples = wait_for("the status projection's counts", settled)
    assert value(samples, "livedash_store_up") == 1
    assert value(samples, "livedash_sessions", stage="CSV_IMPORT", status="COMPLETED") == GOOD + 1
    assert value(samples, "livedash_sessions", stage="TRANSCRIPT_FETCH", status="FAILED") == 1
    # The failed fetch holds its session's next stages back; nothing is due.
    assert value(samples, "livedash_sessions", stage="SESSION_CREATION", status="PENDING") == 1
    assert value(samples, "livedash_stage_due") == 0
    assert value(samples, "livedash_daemons_live") == 1
    lags = [s for s in samples if s.name == "livedash_projection_lag_events"]
    assert {s.labels["projection"] for s in lags} >= {"session_status", "event_index"}


def check_healthz_and_readyz_follow_the_database(running: Running) -> None:
    code, body, content_type = get(running.base + "/healthz")
    assert (code, content_type) == (200, "application/json")
    assert json.loads(body)["worker"] == running.worker
    assert get(running.base + "/nowhere")[0] == 404

    def ready() -> dict[str, Any] | None:
        code, body, _ = get(running.base + "/readyz")
        return json.loads(body) if code == 200 else None

    answer = wait_for("ready", ready)
    assert answer["reasons"] == [] and answer["lag_events"] <= answer["max_lag_events"]
    if running.proxy is None:
        return  # SQLite is a file in the process: there is no server to take away
    running.proxy.pause()
    try:

        def not_ready() -> dict[str, Any] | None:
            code, body, _ = get(running.base + "/readyz")
            return json.loads(body) if code == 503 else None

        refused = wait_for("not ready while the database is away", not_ready)
        assert refused["ready"] is False
        assert refused["reasons"][0].startswith("database unreachable"), refused
        assert get(running.base + "/healthz")[0] == 200  # alive all the same
        # The scrape still answers, with the daemon's counters, and says the store is away.
        away = wait_for(
            "livedash_store_up 0",
            lambda: (
                (samples := scrape(running.base))
                and value(samples, "livedash_store_up") == 0
                and samples
            ),
        )
        assert value(away, "livedash_stage_completed_total") == GOOD * len(WORKER_STAGES)
        assert not [s for s in away if s.name == "livedash_sessions"]
    finally:
        running.proxy.resume()
    assert wait_for("ready again once the database is back", ready)["reasons"] == []


# ------------------------------------------------------------------------ the observer
def test_the_observer_counts_what_the_log_stored(tmp_path: Path) -> None:
    """Lease expiry, failure, hand-back and completion of one stage, stored for real: each
    lands in its own counter, and the durations run from each claim to its outcome."""
    t0 = utc_now()
    at = [t0 + timedelta(seconds=s) for s in range(60)]
    fetch = Stage.TRANSCRIPT_FETCH
    metrics = DaemonMetrics("w1")
    with runtime(f"sqlite:///{tmp_path / 'observer.db'}") as rt:
        company = rt.app.register_company(Company.register("Acme", "x.csv", t0))
        s = Session.import_row(company.id, row(external_id="s1"), "x.csv", t0)
        s.start_stage(fetch, "gone", at[10], at[0])
        a2 = s.start_stage(fetch, "w1", at[50], at[20])  # the first claim's lease expired
        s.fail_stage(fetch, a2, "http_500", "boom", True, at[30], at[25])
        a3 = s.start_stage(fetch, "w1", at[50], at[31])
        s.release_stage(fetch, a3, "the daemon is stopping", at[32])
        a4 = s.start_stage(fetch, "w1", at[59], at[40])
        s.complete_stage(fetch, a4, at[42], {"rate_limit_wait_s": 1.5, "model_requested": "m"})
        metrics.stored(rt.app.save_batch([s]).recordings)

    def get(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, {**labels, "worker": "w1"})

    stage = {"stage": fetch.value}
    assert get("livedash_stage_started_total", **stage) == 4
    assert get("livedash_stage_lease_expired_total", **stage) == 1
    assert get("livedash_stage_failed_total", **stage, error_type="http_500") == 1
    assert get("livedash_stage_failed_total", **stage, error_type="lease_expired") is None
    assert get("livedash_stage_released_total", **stage) == 1
    assert get("livedash_stage_completed_total", **stage) == 1
    assert get("livedash_stage_duration_seconds_sum", **stage, outcome="failed") == 5.0
    assert get("livedash_stage_duration_seconds_sum", **stage, outcome="completed") == 2.0
    assert get("livedash_stage_duration_seconds_count", **stage, outcome="completed") == 1
    assert get("livedash_llm_rate_limit_wait_seconds_total", model="m") == 1.5
    assert metrics._claimed == {}  # every claim came to an end: nothing is kept


# ------------------------------------------------------------------------- readiness
def test_readiness_names_a_lagging_projection_and_a_missing_table(tmp_path: Path) -> None:
    with runtime(f"sqlite:///{tmp_path / 'ready.db'}") as rt:
        endpoints = HealthEndpoints(installation_registry(rt.runner), rt.runner, max_lag_events=2)
        assert endpoints.respond("/readyz")[0] == 200
        company = rt.app.register_company(Company.register("Acme", "x.csv", utc_now()))
        sessions = [
            Session.import_row(company.id, row(external_id=f"r{i}"), "x.csv", utc_now())
            for i in range(3)
        ]
        rt.app.save_batch(sessions)  # stored, not yet projected
        code, body, content_type = endpoints.respond("/readyz")
        answer = json.loads(body)
        assert (code, content_type, answer["ready"]) == (503, "application/json", False)
        assert answer["lag_events"] >= 3 and answer["max_lag_events"] == 2
        assert any("session_status lags the log by" in r for r in answer["reasons"]), answer
        rt.runner.catch_up()
        assert endpoints.respond("/readyz")[0] == 200
        code, body, _ = endpoints.respond("/metrics")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        imported = families["livedash_sessions"].samples
        assert value(imported, "livedash_sessions", stage="CSV_IMPORT", status="COMPLETED") == 3
        assert all("worker" not in s.labels for s in imported)  # serve's have no worker label
        with rt.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE stage_ready")
        code, body, _ = endpoints.respond("/readyz")
        assert code == 503
        assert json.loads(body)["reasons"] == [
            "schema not current: projection tables missing: stage_ready (run `livedash init`)"
        ]


# ----------------------------------------------------------------------- the documents
DOCS = REPO / "docs"
PG_ONLY = {"livedash_partitions_unowned"}
"""Served on PostgreSQL only (no partitions on SQLite)."""
METRIC_NAME = re.compile(r"\b((?:livedash|process)_[a-z_]+)\b")


def served_names(tmp_path: Path) -> tuple[set[str], set[str]]:
    """The name each metric a daemon serves is known by (a counter's ``_total``, a histogram's
    base name), and every sample name it can serve (a counter's with no series yet too)."""
    metrics = DaemonMetrics("docs")
    with runtime(f"sqlite:///{tmp_path / 'docs.db'}") as rt:
        metrics.include(StoreGauges(rt.runner))
        families = list(metrics.registry.collect())
    known = {f.name + ("_total" if f.type == "counter" else "") for f in families} | PG_ONLY
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    samples = {f.name + s for f in families for s in suffixes.get(f.type, ("",))}
    return known, samples | known


def test_the_dashboard_and_the_alert_rules_use_only_served_metrics(tmp_path: Path) -> None:
    known, served = served_names(tmp_path)
    dashboard = json.loads((DOCS / "grafana-livedash.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in METRIC_NAME.findall(e)}
    assert len(used) >= 15 and used <= served, used - served
    named = set(METRIC_NAME.findall((DOCS / "operations.md").read_text()))
    assert named <= served, named - served
    undocumented = {n for n in known if n.startswith("livedash_")} - named
    assert undocumented == set()
