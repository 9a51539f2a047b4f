"""Issue 13's figures for unattended operation, measured on the real `livedash run`.

    .venv/bin/python scripts/measure_unattended.py                       # everything, default sizes
    .venv/bin/python scripts/measure_unattended.py --databases postgres --parts 2b --skip-long

§1 (--parts 1)  lease 10 s, an OpenAI-compatible server answering in 2.5 s,
    `--concurrency AI_ANALYSIS=16`, --lease-sessions (300) sessions through
    `livedash run --until-idle`: sessions whose AI stage is dead, StageFailed(lease_expired),
    sessions dead without one request made for them (target 0), StageReleased, requests.
§2 (--parts 2)  --sessions (500) sessions through all stages; the daemon is SIGKILLed after
    20 %, 45 % and 70 % of the expected answers, restarted after each kill, and finished with
    `run --until-idle`; the server's answered requests are compared with the AIUsageRecorded
    events: answered but unrecorded (target 0 beyond answers received just before a kill),
    and each such answer must show as "answer lost" (an intent without usage) in its session
    and in `costs --json`.
§2b (--parts 2b, PostgreSQL only)  the daemon reaches PostgreSQL through a TCP proxy that is
    cut for --outage (20) s, then for --long-outage (180) s in a second run, during
    --sessions sessions: paid vs recorded, whether the daemon still runs at the end of the
    outage, and the time from the restore to the first new stored event. With --flaps N
    also a run with N cuts of --flap-seconds each (--parts flaps: only that run).

The sessions are imported in-process (what `livedash import` stores) and `costs` is read with
the query `livedash costs --json` prints; the daemon under test is always the real
`livedash run` subprocess (OPENAI_BASE_URL at the fake server, LIVEDASH_AI_PROVIDER=openai).

Every answer of the fake server carries a request id naming its session (the transcripts are
per session), so an answer is matched to its session and to the project's records exactly.
Each figure is printed as one JSON line (prefix-free, `"figure": ...`), then a summary.
Every wait is bounded; the script creates and drops its own databases and folders.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from sqlalchemy import select  # noqa: E402

from cli.runtime import Runtime  # noqa: E402
from domain.company import Company  # noqa: E402
from domain.session import LEASE_EXPIRED, Session  # noqa: E402
from domain.stages import STAGE_ORDER, Stage, Status  # noqa: E402
from processors.clock import utc_now  # noqa: E402
from projections.analytics_queries import Period, costs  # noqa: E402
from projections.schema import sessions as sessions_table  # noqa: E402
from tests.factories import row  # noqa: E402
from tests.openai_server import ChatRequest, FakeOpenAI, Reply, Sent, ok  # noqa: E402
from tests.servers import RouteServer, text  # noqa: E402
from tests.tcp_proxy import TcpProxy  # noqa: E402

AI = Stage.AI_ANALYSIS
LIVEDASH = [sys.executable, "-m", "cli.main"]
MARKER = re.compile(r"dossier (m\d{5})")
DEFAULT_PG = os.environ.get("LIVEDASH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def emit(figure: str, **values: Any) -> dict[str, Any]:
    record = {"figure": figure, **values}
    print(json.dumps(record, default=str), flush=True)
    return record


def utc_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def note(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ servers
class MarkedOpenAI(FakeOpenAI):
    """The fake OpenAI server, whose request ids name the session a request was for, and
    which notes when each answer left (its last byte written)."""

    def __init__(self, latency: float) -> None:
        self._counter = itertools.count(1)
        self.answered_at: dict[str, float] = {}
        self.arrivals: list[tuple[str, float]] = []
        super().__init__(self._reply, latency=latency, api_key="sk-measure")

    def _reply(self, request: ChatRequest) -> Reply:
        found = MARKER.search(request.text())
        marker = found.group(1) if found else "unknown"
        self.arrivals.append((marker, time.monotonic()))  # called under the server's lock
        return ok(request_id=f"req-{marker}-{next(self._counter)}")

    def _finished(self, sent: Sent | None, abandoned: bool) -> None:
        if sent is not None and sent.paid:
            self.answered_at[sent.request_id] = time.monotonic()
        super()._finished(sent, abandoned)

    def requests_for(self) -> Counter[str]:
        with self._lock:
            return Counter(marker for marker, _ in self.arrivals)

    def answered_ids(self) -> list[str]:
        return [s.request_id for s in self.paid_responses()]


def marker_of(request_id: str | None) -> str | None:
    if not request_id:
        return None
    parts = request_id.split("-")
    return parts[1] if len(parts) == 3 and parts[0] == "req" else None


def transcript(marker: str) -> str:
    return (
        f"[01.10.2026 10:00:00] User: Hoi, ik ben ziek (dossier {marker}). Wie moet ik bellen?\n"
        "[01.10.2026 10:00:05] Assistant: Bel je leidinggevende, of mail hr@example.com.\n"
        "[01.10.2026 10:01:00] User: Moet ik een doktersbriefje hebben?\n"
    )


# ---------------------------------------------------------------- databases
@contextlib.contextmanager
def database(kind: str, admin_url: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'measure.db'}"
        return
    name = f"livedash_measure_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def through_proxy(url: str, port: int) -> str:
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


def pg_target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


# ------------------------------------------------------------------ harness
@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None after SIGTERM (and SIGKILL) when it ran past ``timeout``."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            note(f"daemon still running after {timeout:.0f} s: SIGTERM")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
            return None

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict):
                    out.append(item)
        return out


class Pipeline:
    """One database with n imported sessions, their transcript server and the model server."""

    def __init__(self, url: str, folder: Path, n: int, latency: float, lease: float) -> None:
        self.url = url
        self.folder = folder
        self.n = n
        self.lease = lease
        self.transcripts = RouteServer().start()
        self.openai = MarkedOpenAI(latency).start()
        self._runs = itertools.count(1)
        self.markers = [f"m{i:05d}" for i in range(n)]
        for marker in self.markers:
            self.transcripts.routes[f"/{marker}.txt"] = text(transcript(marker))
        self.export = folder / "export.csv"

    def close(self) -> None:
        self.openai.wait_idle(timeout=10)
        self.openai.stop()
        self.transcripts.stop()

    def env(self, url: str | None = None) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LIVEDASH_", "OPENAI_"))},
            "LIVEDASH_DATABASE_URL": url or self.url,
            "LIVEDASH_LEASE_SECONDS": str(self.lease),
            "LIVEDASH_FETCH_ALLOW_HOSTS": "127.0.0.1",
            "LIVEDASH_AI_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-measure",
            "OPENAI_BASE_URL": self.openai.base_url,
            "PYTHONPATH": str(REPO),
        }

    def prepare(self) -> None:
        """The sessions imported in-process (as `livedash import` stores them): the daemon
        under test is the real command; starting the CLI four more times would only cost time."""
        rt = Runtime.open(self.url, create=True)
        try:
            company = rt.app.register_company(
                Company.register("Measure", str(self.export), utc_now())
            )
            rows = [row(external_id=m, url=self.transcripts.url(f"/{m}.txt")) for m in self.markers]
            for i in range(0, len(rows), 500):
                rt.app.save_batch(
                    [
                        Session.import_row(company.id, r, "export.csv", utc_now())
                        for r in rows[i : i + 500]
                    ]
                )
            rt.runner.catch_up()
        finally:
            rt.close()

    def daemon(self, *args: str, url: str | None = None) -> Daemon:
        log = self.folder / f"daemon-{next(self._runs)}.log"
        with log.open("wb") as stderr:
            proc = subprocess.Popen(
                [*LIVEDASH, "run", "--csv-interval", "0", "--poll-interval", "0.2", *args],
                env=self.env(url),
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        return Daemon(proc, log)

    def costs(self) -> dict[str, Any]:
        """What `livedash costs --json` prints: the same query, in-process."""
        rt = Runtime.open(self.url)
        try:
            rt.runner.catch_up()
            with rt.engine.connect() as conn:
                report = costs(conn, "model", Period(start=None, end=None))
        finally:
            rt.close()
        return {
            "requests": report.requests,
            "requests_answer_lost": report.requests_answer_lost,
            "cost_eur_answer_lost_estimated": report.cost_eur_answer_lost_estimated,
        }


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def answered(pipe: Pipeline, daemon: Daemon, target: int) -> bool:
    """The server has answered ``target`` requests, or the daemon is gone."""
    return pipe.openai.paid >= target or not daemon.alive()


# ------------------------------------------------------------------ records
@dataclass
class SessionRecord:
    marker: str
    events: list[Any]
    session: Session

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def read_records(url: str) -> list[SessionRecord]:
    rt = Runtime.open(url)
    try:
        rt.runner.catch_up()
        with rt.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(select(sessions_table.c.session_id)).all()]
        out = []
        for s in rt.app.get_sessions(ids):
            out.append(SessionRecord(s.external_id, list(rt.app.session_events(s.id)), s))
        return out
    finally:
        rt.close()


@dataclass
class PaidComparison:
    answered_by_server: int
    recorded: int
    answered_but_unrecorded: list[str]
    recorded_not_answered: list[str]
    intents: int
    intents_without_usage: int
    unreported: list[str]
    """Sessions with more answered-but-unrecorded answers than intents without usage."""
    recorded_twice: list[dict[str, Any]]
    """Answers stored more than once (their cost counted twice), with their events."""


def compare_paid(server: MarkedOpenAI, records: list[SessionRecord]) -> PaidComparison:
    answered = server.answered_ids()
    recorded = [
        e.usage.request_id for r in records for e in r.of(Session.AIUsageRecorded)
    ]  # the server's x-request-id, as the project stores it
    missing = sorted(set(answered) - set(recorded))
    extra = sorted(set(recorded) - set(answered))
    lost_by_session: dict[str, int] = {}
    intents = 0
    for r in records:
        used = {e.usage.client_request_id for e in r.of(Session.AIUsageRecorded)}
        sent = [e.intent.client_request_id for e in r.of(Session.AIRequestSent)]
        intents += len(sent)
        lost_by_session[r.marker] = sum(1 for c in sent if c not in used)
    twice = [rid for rid, count in Counter(recorded).items() if count > 1]
    recorded_twice = [
        {
            "request_id": rid,
            "session": r.marker,
            "events": [
                {
                    "version": e.originator_version,
                    "attempt": e.attempt,
                    "client_request_id": e.usage.client_request_id,
                    "timestamp": e.timestamp,
                }
                for e in r.of(Session.AIUsageRecorded)
                if e.usage.request_id == rid
            ],
        }
        for rid in twice
        for r in records
        if r.marker == marker_of(rid)
    ]
    missing_by_session = Counter(marker_of(rid) or "unknown" for rid in missing)
    unreported = sorted(
        m for m, count in missing_by_session.items() if count > lost_by_session.get(m, 0)
    )
    return PaidComparison(
        answered_by_server=len(answered),
        recorded=len(recorded),
        answered_but_unrecorded=missing,
        recorded_not_answered=extra,
        intents=intents,
        intents_without_usage=sum(lost_by_session.values()),
        unreported=unreported,
        recorded_twice=recorded_twice,
    )


def stage_summary(records: list[SessionRecord]) -> dict[str, Any]:
    last = STAGE_ORDER[-1]
    done = sum(
        1 for r in records if r.session.stages[last].status in (Status.COMPLETED, Status.SKIPPED)
    )
    statuses = Counter(r.session.stages[AI].status.value for r in records)
    return {"sessions_all_stages_done": done, "ai_status": dict(statuses)}


# ----------------------------------------------------------------------- §1
def measure_leases(kind: str, url: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    pipe = Pipeline(url, folder, args.lease_sessions, args.lease_latency, args.lease)
    try:
        pipe.prepare()
        t0 = time.monotonic()
        daemon = pipe.daemon(
            "--until-idle",
            "--idle-horizon",
            "30",
            "--concurrency",
            f"AI_ANALYSIS={args.lease_concurrency}",
            "--lease",
            f"AI_ANALYSIS={args.lease:g}",
        )
        code = daemon.wait(args.max_run)
        elapsed = time.monotonic() - t0
        pipe.openai.wait_idle(timeout=30)
        records = read_records(url)
        requests = pipe.openai.requests_for()
        spent = pipe.costs()
    finally:
        pipe.close()
    failed_ai = [r for r in records if r.session.stages[AI].status is Status.FAILED]
    dead = [r for r in failed_ai if not r.session.stages[AI].retryable]
    expired = [
        e for r in records for e in r.of(Session.StageFailed) if e.error_type == LEASE_EXPIRED
    ]
    released = [e for r in records for e in r.of(Session.StageReleased)]
    dead_without_request = [
        r.marker for r in dead if not r.of(Session.AIRequestSent) and not requests[r.marker]
    ]
    attempts = Counter(r.session.stages[AI].attempts_run for r in records)
    return emit(
        "s1_short_lease_long_queue",
        database=kind,
        sessions=len(records),
        lease_s=args.lease,
        model_latency_s=args.lease_latency,
        ai_concurrency=args.lease_concurrency,
        daemon_exit=code,
        elapsed_s=round(elapsed, 1),
        ai_failed=len(failed_ai),
        ai_dead=len(dead),
        dead_without_request=len(dead_without_request),
        dead_without_request_sessions=dead_without_request[:20],
        lease_expired_failures=len(expired),
        lease_expired_by_stage=dict(Counter(e.stage.value for e in expired)),
        lease_expired_ai_messages=sorted({e.error for e in expired if e.stage is AI})[:5],
        stage_released=len(released),
        stage_released_reasons=dict(Counter(e.reason for e in released).most_common(5)),
        lease_extended=sum(len(r.of(Session.LeaseExtended)) for r in records),
        ai_attempts_run=dict(sorted(attempts.items())),
        requests_total=sum(requests.values()),
        answered_by_server=pipe.openai.paid,
        requests_per_session_max=max(requests.values(), default=0),
        requests_without_session_marker=requests.get("unknown", 0),
        costs_requests=spent.get("requests"),
        **stage_summary(records),
    )


# ----------------------------------------------------------------------- §2
def measure_kills(kind: str, url: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    pipe = Pipeline(url, folder, args.sessions, args.kill_latency, args.kill_lease)
    kills: list[dict[str, Any]] = []
    try:
        pipe.prepare()
        t0 = time.monotonic()
        for fraction in args.kill_at:
            daemon = pipe.daemon()
            target = int(fraction * args.sessions)
            reached = wait_until(functools.partial(answered, pipe, daemon, target), args.max_run)
            if not daemon.alive():
                raise RuntimeError(
                    f"the daemon exited before the kill ({daemon.proc.returncode}): "
                    f"{daemon.log.read_text()[-2000:]}"
                )
            in_flight = pipe.openai.active
            at = time.monotonic()
            daemon.kill()
            reaped = time.monotonic()
            kills.append(
                {
                    "after_answers": pipe.openai.paid,
                    "target_reached": reached,
                    "at_s": round(at - t0, 1),
                    "reaped_after_s": round(reaped - at, 3),
                    "requests_in_flight_at_kill": in_flight,
                    "_window": (at, reaped),
                }
            )
            note(f"{kind}: SIGKILL after {pipe.openai.paid} answers ({in_flight} in flight)")
        final = pipe.daemon("--until-idle", "--idle-horizon", "30")
        code = final.wait(args.max_run)
        elapsed = time.monotonic() - t0
        pipe.openai.wait_idle(timeout=30)
        records = read_records(url)
        spent = pipe.costs()
        cmp = compare_paid(pipe.openai, records)
        answered_at = dict(pipe.openai.answered_at)
    finally:
        pipe.close()
    windows = [k.pop("_window") for k in kills]

    def at_kill(rid: str) -> dict[str, Any]:
        """When the answer's last byte left the server, relative to the nearest SIGKILL
        (negative: before it); within a second before the kill or while the process was
        being reaped, the answer was in flight at the kill."""
        t = answered_at.get(rid)
        if t is None or not windows:
            return {"request_id": rid, "s_from_kill": None, "in_flight_at_kill": False}
        sent, reaped = min(windows, key=lambda w: abs(t - w[0]))
        return {
            "request_id": rid,
            "s_from_kill": round(t - sent, 3),
            "in_flight_at_kill": sent - 1.0 <= t <= reaped + 0.05,
        }

    unrecorded = [at_kill(rid) for rid in cmp.answered_but_unrecorded]
    return emit(
        "s2_sigkill_three_times",
        database=kind,
        sessions=len(records),
        lease_s=args.kill_lease,
        model_latency_s=args.kill_latency,
        kills=kills,
        final_run_exit=code,
        elapsed_s=round(elapsed, 1),
        answered_by_server=cmp.answered_by_server,
        recorded=cmp.recorded,
        answered_but_unrecorded=len(cmp.answered_but_unrecorded),
        answered_but_unrecorded_detail=unrecorded[:20],
        answered_but_unrecorded_not_at_kill=sum(
            1 for u in unrecorded if not u["in_flight_at_kill"]
        ),
        recorded_not_answered=len(cmp.recorded_not_answered),
        recorded_twice=len(cmp.recorded_twice),
        recorded_twice_detail=cmp.recorded_twice[:10],
        intents=cmp.intents,
        intents_without_usage=cmp.intents_without_usage,
        requests_answer_lost=spent.get("requests_answer_lost"),
        cost_eur_answer_lost_estimated=spent.get("cost_eur_answer_lost_estimated"),
        costs_requests=spent.get("requests"),
        every_unrecorded_answer_reported_lost=not cmp.unreported
        and len(cmp.answered_but_unrecorded) <= (spent.get("requests_answer_lost") or 0),
        sessions_with_unreported_answers=cmp.unreported[:20],
        lease_expired_failures=sum(
            1 for r in records for e in r.of(Session.StageFailed) if e.error_type == LEASE_EXPIRED
        ),
        **stage_summary(records),
    )


# ---------------------------------------------------------------------- §2b
def max_event_id(url: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT coalesce(max(notification_id), 0) FROM livedash_events"
        ).fetchone()
    return int(row[0]) if row else 0


def measure_outage(
    url: str, folder: Path, seconds: float, args: argparse.Namespace
) -> dict[str, Any]:
    pipe = Pipeline(url, folder, args.sessions, args.outage_latency, args.outage_lease)
    host, port = pg_target(url)
    proxy = TcpProxy(host, port).start()
    try:
        pipe.prepare()
        t0 = time.monotonic()
        daemon = pipe.daemon(
            "--until-idle", "--idle-horizon", "30", url=through_proxy(url, proxy.port)
        )
        target = int(args.outage_at * args.sessions)
        wait_until(lambda: pipe.openai.paid >= target or not daemon.alive(), args.max_run)
        if not daemon.alive():
            raise RuntimeError(
                f"the daemon ended before the outage: {daemon.log.read_text()[-2000:]}"
            )
        paid_at_cut, requests_at_cut, in_flight_at_cut = (
            pipe.openai.paid,
            pipe.openai.total,
            pipe.openai.active,
        )
        proxy.pause()
        cut = time.monotonic()
        cut_at = utc_iso()
        note(f"outage of {seconds:.0f} s begins after {paid_at_cut} answers")
        died_at: float | None = None
        while time.monotonic() - cut < seconds:
            if died_at is None and not daemon.alive():
                died_at = time.monotonic() - cut
            time.sleep(0.1)
        alive_at_end = daemon.alive()
        exit_in_outage = None if alive_at_end else daemon.proc.returncode
        requests_during = pipe.openai.total - requests_at_cut
        paid_during = pipe.openai.paid - paid_at_cut
        before = max_event_id(url)
        proxy.resume()
        restored = time.monotonic()
        restored_at = utc_iso()
        resumed = wait_until(lambda: max_event_id(url) > before, 120, step=0.05)
        to_first_event = round(time.monotonic() - restored, 2) if resumed else None
        code = daemon.wait(args.max_run)
        elapsed = time.monotonic() - t0
        pipe.openai.wait_idle(timeout=30)
        log = daemon.log_lines()
        records = read_records(url)
        spent = pipe.costs()
        cmp = compare_paid(pipe.openai, records)
    finally:
        proxy.stop()
        pipe.close()
    kinds = Counter(str(item.get("event")) for item in log)
    back = [item for item in log if item.get("event") == "database_back"]
    errors = [item for item in log if item.get("event") in ("error", "crashed", "fatal")]
    return emit(
        "s2b_database_outage",
        database="postgres",
        sessions=len(records),
        outage_s=seconds,
        model_latency_s=args.outage_latency,
        lease_s=args.outage_lease,
        answers_before_cut=paid_at_cut,
        requests_in_flight_at_cut=in_flight_at_cut,
        requests_started_during_outage=requests_during,
        answers_during_outage=paid_during,
        daemon_running_at_end_of_outage=alive_at_end,
        daemon_exit_in_outage=exit_in_outage,
        daemon_died_after_s=None if died_at is None else round(died_at, 1),
        restore_to_first_event_s=to_first_event,
        cut_at=cut_at,
        restored_at=restored_at,
        database_back_logged=back[:3],
        database_log=[item for item in log if str(item.get("event")).startswith("database")][:20],
        log_counts=dict(kinds),
        ai_call_log=[item for item in log if str(item.get("event")).startswith("ai_call")][:10],
        lost_races=[item.get("lost_races") for item in log if item.get("event") == "stopped"],
        log_errors=errors[:5],
        daemon_exit=code,
        elapsed_s=round(elapsed, 1),
        paid=cmp.answered_by_server,
        recorded=cmp.recorded,
        answered_but_unrecorded=len(cmp.answered_but_unrecorded),
        answered_but_unrecorded_ids=cmp.answered_but_unrecorded[:20],
        recorded_twice=len(cmp.recorded_twice),
        recorded_twice_detail=cmp.recorded_twice[:10],
        costs_requests=spent.get("requests"),
        intents_without_usage=cmp.intents_without_usage,
        requests_answer_lost=spent.get("requests_answer_lost"),
        **stage_summary(records),
    )


def measure_flaps(url: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Many short cuts while the daemon writes: a cut can land between a commit reaching the
    server and its answer reaching the daemon, the case where "stored or not" is unknown."""
    pipe = Pipeline(url, folder, args.sessions, args.outage_latency, args.outage_lease)
    host, port = pg_target(url)
    proxy = TcpProxy(host, port).start()
    alive_after_each: list[bool] = []
    try:
        pipe.prepare()
        t0 = time.monotonic()
        daemon = pipe.daemon(
            "--until-idle", "--idle-horizon", "30", url=through_proxy(url, proxy.port)
        )
        target = int(0.1 * args.sessions)
        wait_until(lambda: pipe.openai.paid >= target or not daemon.alive(), args.max_run)
        for _ in range(args.flaps):
            proxy.pause()
            time.sleep(args.flap_seconds)
            proxy.resume()
            alive_after_each.append(daemon.alive())
            if not daemon.alive():
                break
            wait_until(lambda: not daemon.alive(), args.flap_gap)
        code = daemon.wait(args.max_run)
        elapsed = time.monotonic() - t0
        pipe.openai.wait_idle(timeout=30)
        log = daemon.log_lines()
        records = read_records(url)
        spent = pipe.costs()
        cmp = compare_paid(pipe.openai, records)
    finally:
        proxy.stop()
        pipe.close()
    kinds = Counter(str(item.get("event")) for item in log)
    return emit(
        "s2b_flapping_database",
        database="postgres",
        sessions=len(records),
        flaps=len(alive_after_each),
        flap_s=args.flap_seconds,
        gap_s=args.flap_gap,
        daemon_running_after_every_flap=all(alive_after_each),
        daemon_exit_during_flaps=None if all(alive_after_each) else code,
        daemon_exit=code,
        elapsed_s=round(elapsed, 1),
        paid=cmp.answered_by_server,
        recorded=cmp.recorded,
        answered_but_unrecorded=len(cmp.answered_but_unrecorded),
        recorded_twice=len(cmp.recorded_twice),
        recorded_twice_detail=cmp.recorded_twice[:10],
        intents_without_usage=cmp.intents_without_usage,
        requests_answer_lost=spent.get("requests_answer_lost"),
        costs_requests=spent.get("requests"),
        log_counts=dict(kinds),
        ai_call_log=[item for item in log if str(item.get("event")).startswith("ai_call")][:10],
        lost_races=[item.get("lost_races") for item in log if item.get("event") == "stopped"],
        **stage_summary(records),
    )


# --------------------------------------------------------------------- main
def summary(results: list[dict[str, Any]]) -> None:
    print("\n== summary ==")
    for r in results:
        f, db = r["figure"], r.get("database")
        if f == "s1_short_lease_long_queue":
            print(
                f"§1 {db}: {r['sessions']} sessions, lease {r['lease_s']:g} s, model "
                f"{r['model_latency_s']:g} s, AI x{r['ai_concurrency']}: exit {r['daemon_exit']} "
                f"in {r['elapsed_s']} s; AI dead {r['ai_dead']} (failed {r['ai_failed']}), "
                f"dead without a request {r['dead_without_request']} (target 0), "
                f"lease_expired {r['lease_expired_failures']}, StageReleased {r['stage_released']}, "
                f"requests {r['requests_total']} for {r['sessions']} sessions, "
                f"all stages done {r['sessions_all_stages_done']}"
            )
        elif f == "s2_sigkill_three_times":
            print(
                f"§2 {db}: {r['sessions']} sessions, 3x SIGKILL (after "
                f"{', '.join(str(k['after_answers']) for k in r['kills'])} answers): answered by "
                f"server {r['answered_by_server']}, recorded {r['recorded']} (twice "
                f"{r['recorded_twice']}), answered but "
                f"unrecorded {r['answered_but_unrecorded']} (not in flight at a kill: "
                f"{r['answered_but_unrecorded_not_at_kill']}), requests_answer_lost "
                f"{r['requests_answer_lost']}, every unrecorded answer reported lost: "
                f"{r['every_unrecorded_answer_reported_lost']}, all stages done "
                f"{r['sessions_all_stages_done']}"
            )
        elif f == "s2b_flapping_database":
            print(
                f"§2b postgres, {r['flaps']} cuts of {r['flap_s']:g} s during {r['sessions']} "
                f"sessions: paid {r['paid']}, recorded {r['recorded']} (recorded twice "
                f"{r['recorded_twice']}), unrecorded {r['answered_but_unrecorded']}; running "
                f"after every cut: {r['daemon_running_after_every_flap']} (exit during the "
                f"cuts: {r['daemon_exit_during_flaps']}, 0 = idle, all done); exit "
                f"{r['daemon_exit']}"
            )
        elif f == "s2b_database_outage":
            print(
                f"§2b postgres, {r['outage_s']:g} s outage during {r['sessions']} sessions: paid "
                f"{r['paid']}, recorded {r['recorded']} (recorded twice {r['recorded_twice']}), "
                f"unrecorded "
                f"{r['answered_but_unrecorded']}; daemon running at the end of the outage: "
                f"{r['daemon_running_at_end_of_outage']} (exit in outage "
                f"{r['daemon_exit_in_outage']}); restore -> first new event "
                f"{r['restore_to_first_event_s']} s; database_back "
                f"{[b.get('seconds') for b in r['database_back_logged']]}; requests started in "
                f"the outage {r['requests_started_during_outage']}; final exit {r['daemon_exit']}"
            )


def fractions(value: str) -> list[float]:
    return [float(x) for x in value.split(",") if x.strip()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--databases", default="sqlite,postgres")
    p.add_argument(
        "--parts",
        default="1,2,2b",
        help="which of 1, 2, 2b (flaps: only the --flaps run) to measure",
    )
    p.add_argument("--postgres-url", default=DEFAULT_PG, help="server to create databases on")
    p.add_argument("--sessions", type=int, default=500, help="sessions for §2 and §2b")
    p.add_argument("--lease-sessions", type=int, default=300, help="sessions for §1")
    p.add_argument("--lease", type=float, default=10.0, help="§1 lease seconds")
    p.add_argument("--lease-latency", type=float, default=2.5, help="§1 model latency")
    p.add_argument("--lease-concurrency", type=int, default=16)
    p.add_argument("--kill-latency", type=float, default=0.5, help="§2 model latency")
    p.add_argument("--kill-lease", type=float, default=10.0, help="§2 lease seconds")
    p.add_argument("--kill-at", type=fractions, default=[0.2, 0.45, 0.7])
    p.add_argument("--outage", type=float, default=20.0, help="§2b short outage seconds")
    p.add_argument("--long-outage", type=float, default=180.0, help="§2b long outage seconds")
    p.add_argument("--skip-long", action="store_true", help="§2b: only the short outage")
    p.add_argument("--flaps", type=int, default=0, help="§2b: also N short cuts (0: none)")
    p.add_argument("--flap-seconds", type=float, default=1.0)
    p.add_argument("--flap-gap", type=float, default=3.0, help="seconds between short cuts")
    p.add_argument("--outage-at", type=float, default=0.25, help="fraction of answers first")
    p.add_argument("--outage-latency", type=float, default=0.5)
    p.add_argument("--outage-lease", type=float, default=30.0)
    p.add_argument("--keep-logs", type=Path, help="copy the daemons' logs into this folder")
    p.add_argument("--max-run", type=float, default=900.0, help="cap on any one daemon run")
    args = p.parse_args()
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    parts = {x.strip() for x in args.parts.split(",") if x.strip()}
    for k in kinds:
        if k not in ("sqlite", "postgres"):
            p.error(f"unknown database {k!r}")
    results: list[dict[str, Any]] = []
    emit("machine", cores=os.cpu_count(), python=sys.version.split()[0], started=time.time())

    def fresh(kind: str, fn: Callable[[str, Path], dict[str, Any]]) -> None:
        folder = Path(tempfile.mkdtemp(prefix="livedash-measure-"))
        try:
            with database(kind, args.postgres_url, folder) as url:
                results.append(fn(url, folder))
        finally:
            if args.keep_logs:
                target = args.keep_logs / f"{len(results)}-{kind}-{folder.name}"
                target.mkdir(parents=True, exist_ok=True)
                for log in folder.glob("daemon-*.log"):
                    shutil.copy(log, target / log.name)
            shutil.rmtree(folder, ignore_errors=True)

    for kind in kinds:
        if "1" in parts:
            note(f"§1 on {kind}")
            fresh(kind, functools.partial(measure_leases, kind, args=args))
        if "2" in parts:
            note(f"§2 on {kind}")
            fresh(kind, functools.partial(measure_kills, kind, args=args))
    if "2b" in parts and "postgres" in kinds:
        outages = [args.outage] + ([] if args.skip_long else [args.long_outage])
        for seconds in outages:
            note(f"§2b: {seconds:g} s outage")
            fresh("postgres", functools.partial(measure_outage, seconds=seconds, args=args))
    if args.flaps and {"2b", "flaps"} & parts and "postgres" in kinds:
        note(f"§2b: {args.flaps} cuts of {args.flap_seconds:g} s")
        fresh("postgres", functools.partial(measure_flaps, args=args))
    summary(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
