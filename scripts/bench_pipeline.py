"""Benchmarks that run the real daemon: CSV → SESSION_CREATION under a backlog, hand-off
latency under a trickle, and the peak memory of `livedash run` as a separate process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from benchlib import TranscriptServer, database, percentile, pipeline_csv, source_row, stats
from sqlalchemy import select

from cli.bootstrap import build_processors, stage_configs
from cli.runtime import Runtime, events_table
from cli.secrets import environment_secrets
from cli.settings import Settings
from domain.company import Company
from domain.session import Session
from domain.stages import Stage, Status
from processors.clock import utc_now
from processors.ingest.importer import file_reader, run_import
from processors.runtime.config import DaemonConfig
from processors.runtime.daemon import Daemon
from processors.runtime.reporting import JsonLogReporter
from projections.notify import PgListener
from projections.queries import overview
from projections.schema import sessions as sessions_table

REPO = Path(__file__).resolve().parent.parent
FETCH_AND_CREATE = (Stage.TRANSCRIPT_FETCH, Stage.SESSION_CREATION)
SQLITE_POLL = 0.05
"""SQLite has no NOTIFY: the in-process daemon polls this often (the CLI default is 1 s)."""


def _import_company(rt: Runtime, tmp: str, n: int, base_url: str) -> Company:
    path = Path(tmp) / f"pipeline-{uuid.uuid4().hex[:6]}.csv"
    path.write_text(pipeline_csv(n, base_url), encoding="utf-8")
    company = rt.app.register_company(Company.register("Pipe", str(path), utc_now()))
    if n:
        run_import(rt.app, rt.runner, company, file_reader(path), utc_now)
    rt.runner.catch_up()
    return company


@contextmanager
def _daemon(rt: Runtime, url: str, kind: str, until_idle: bool) -> Iterator[Daemon]:
    """The daemon `livedash run --stages TRANSCRIPT_FETCH,SESSION_CREATION` builds, with a
    NOTIFY listener on PostgreSQL, in this process so its events can be inspected."""
    configs = stage_configs(120.0, {}, {Stage.TRANSCRIPT_FETCH: 32, Stage.SESSION_CREATION: 4})
    config = DaemonConfig(
        worker_id="bench",
        stages=FETCH_AND_CREATE,
        stage_configs=configs,
        until_idle=until_idle,
        idle_horizon=0,
        poll_interval=SQLITE_POLL if kind == "sqlite" else 1.0,
        level_interval=2.0,
    )
    settings = Settings(database_url=url)
    daemon = Daemon(
        rt.app,
        rt.runner,
        build_processors(settings, environment_secrets({}), configs),
        config,
        utc_now,
        JsonLogReporter(io.StringIO()),
    )
    listener = None
    if kind == "postgres":
        listener = PgListener(rt.config, events_table(rt.config), daemon.wake.set).start()
    try:
        yield daemon
    finally:
        if listener:
            listener.stop()


def _timeline(rt: Runtime) -> list[dict[str, datetime]]:
    """Per session, when it was imported and when each of the two stages started/completed."""
    with rt.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(select(sessions_table.c.session_id))]
    out = []
    for sid in ids:
        marks: dict[str, datetime] = {}
        for e in rt.app.session_events(sid):
            if isinstance(e, Session.Imported):
                marks["imported"] = e.timestamp
            elif isinstance(e, Session.StageStarted | Session.StageCompleted):
                verb = "started" if isinstance(e, Session.StageStarted) else "completed"
                marks.setdefault(f"{e.stage.value}.{verb}", e.timestamp)
        out.append(marks)
    return out


def _ms(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() * 1000


def _percentiles(samples: list[float]) -> dict[str, float]:
    return {p: percentile(samples, q) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))}


def _handoffs(timeline: list[dict[str, datetime]]) -> dict[str, list[float]]:
    """import → TRANSCRIPT_FETCH start (another writer's event wakes the daemon: NOTIFY or
    a poll) and TRANSCRIPT_FETCH done → SESSION_CREATION start (inside the daemon)."""
    fetch, create = "TRANSCRIPT_FETCH", "SESSION_CREATION"
    return {
        "import_to_fetch": [_ms(m["imported"], m[f"{fetch}.started"]) for m in timeline],
        "fetch_to_creation": [
            _ms(m[f"{fetch}.completed"], m[f"{create}.started"]) for m in timeline
        ],
    }


def bench_pipeline(kind: str, n: int, runs: int, tmp: str) -> dict[str, Any]:
    """CSV → SESSION_CREATION through the real daemon under a backlog: all n sessions are
    imported first, then the daemon runs until idle. Throughput is first start → last done."""
    rates: list[float] = []
    hand: dict[str, list[float]] = {"import_to_fetch": [], "fetch_to_creation": []}
    for _ in range(runs):
        with (
            TranscriptServer() as server,
            database(kind, tmp) as url,
            Runtime.open(url, create=True) as rt,
        ):
            _import_company(rt, tmp, n, server.url)
            with _daemon(rt, url, kind, until_idle=True) as daemon:
                daemon.run()
            timeline = _timeline(rt)
            assert len(timeline) == n and all(
                "SESSION_CREATION.completed" in m for m in timeline
            ), "not every session reached SESSION_CREATION"
            first = min(m["TRANSCRIPT_FETCH.started"] for m in timeline)
            last = max(m["SESSION_CREATION.completed"] for m in timeline)
            rates.append(n / (last - first).total_seconds())
            for key, samples in _handoffs(timeline).items():
                hand[key].extend(samples)
    return {
        "sessions": n,
        "sessions_per_s": stats(rates),
        "backlog_handoff_ms": {k: _percentiles(v) for k, v in hand.items()},
    }


def bench_trickle(kind: str, n: int, runs: int, tmp: str) -> dict[str, Any]:
    """Hand-off without a backlog: a second writer imports a few sessions every 50 ms while
    the daemon runs, so the latency is the wake-up and claim, not time spent in a queue."""
    hand: dict[str, list[float]] = {"import_to_fetch": [], "fetch_to_creation": []}
    per_tick = 4
    for _ in range(runs):
        with (
            TranscriptServer() as server,
            database(kind, tmp) as url,
            Runtime.open(url, create=True) as rt,
        ):
            company = _import_company(rt, tmp, 0, server.url)
            with _daemon(rt, url, kind, until_idle=False) as daemon:
                worker = threading.Thread(target=daemon.run, name="bench-daemon")
                worker.start()
                try:
                    _trickle(url, company.id, n, per_tick, server.url)
                    _wait_for(rt, Stage.SESSION_CREATION, n, timeout=60 + n / 10)
                finally:
                    daemon.request_stop()
                    worker.join()
            for key, samples in _handoffs(_timeline(rt)).items():
                hand[key].extend(samples)
    return {
        "sessions": n,
        "rate_sessions_per_s": per_tick / 0.05,
        "wake_up": f"poll every {SQLITE_POLL:.2f} s" if kind == "sqlite" else "LISTEN/NOTIFY",
        "handoff_ms": {k: _percentiles(v) for k, v in hand.items()},
    }


def _trickle(url: str, company_id: uuid.UUID, n: int, per_tick: int, base_url: str) -> None:
    """Imports n sessions, per_tick at a time every 50 ms, through its own event store
    connection (as a separate `livedash import` would)."""
    with Runtime.open(url) as importer:
        for start in range(0, n, per_tick):
            tick = time.monotonic()
            now = utc_now()
            batch = []
            for i in range(start, min(n, start + per_tick)):
                row = source_row(i, now).model_copy(
                    update={"transcript_url": f"{base_url}/t/trickle-{i}.txt"}
                )
                batch.append(Session.import_row(company_id, row, "trickle", now))
            importer.app.save_batch(batch)
            time.sleep(max(0.0, 0.05 - (time.monotonic() - tick)))


def _wait_for(rt: Runtime, stage: Stage, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with rt.engine.connect() as conn:
            if overview(conn)[stage.value][Status.COMPLETED.value] >= n:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{stage.value} did not complete {n} sessions in {timeout:.0f} s")


def bench_rss(kind: str, n: int, runs: int, tmp: str) -> dict[str, Any]:
    """Peak memory of the real `livedash run --until-idle` over n imported sessions, all four
    worker stages (offline analyser), as the daemon itself reports it when it stops."""
    peaks: list[float] = []
    rates: list[float] = []
    for _ in range(runs):
        with TranscriptServer() as server, database(kind, tmp) as url:
            with Runtime.open(url, create=True) as rt:
                _import_company(rt, tmp, n, server.url)
            peak_mb, seconds = _run_daemon_process(url, tmp)
            with Runtime.open(url) as rt, rt.engine.connect() as conn:
                done = overview(conn)[Stage.QUESTION_EXTRACTION.value][Status.COMPLETED.value]
            assert done == n, f"only {done} of {n} sessions went all the way"
            peaks.append(peak_mb)
            rates.append(n / seconds)
    return {
        "sessions": n,
        "peak_rss_mb": stats(peaks),
        "all_stages_sessions_per_s": stats(rates),
    }


def _run_daemon_process(url: str, tmp: str) -> tuple[float, float]:
    """Runs `livedash run --until-idle --csv-interval 0`; returns (peak RSS in MB, seconds).

    The peak is the daemon's own (VmHWM, in its `stopped` log line). The kernel's
    ``ru_maxrss`` of the child is not: after fork and exec it starts from this process's
    peak, and this process imported the whole backlog."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEDASH_", "OPENAI_"))}
    env.update(
        LIVEDASH_DATABASE_URL=url,
        LIVEDASH_FETCH_ALLOW_HOSTS="127.0.0.1",
        LIVEDASH_AI_PROVIDER="offline",
        PYTHONPATH=str(REPO),
    )
    log = Path(tmp) / "daemon.log"
    cmd = [sys.executable, "-m", "cli.main", "run", "--until-idle", "--csv-interval", "0"]
    started = time.perf_counter()
    with open(log, "wb") as out:
        code = subprocess.run(
            cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"livedash run exited {code}: {log.read_text()[-2000:]}")
    for line in reversed(log.read_text(encoding="utf-8").splitlines()):
        if line.startswith("{") and json.loads(line).get("event") == "stopped":
            return float(json.loads(line)["peak_rss_mb"]), seconds
    raise RuntimeError(f"livedash run logged no peak memory: {log.read_text()[-2000:]}")
