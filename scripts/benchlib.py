"""Helpers shared by the benchmark scripts: databases, synthetic data, timing."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from cli.runtime import Runtime
from domain.csv_rows import SourceRow
from domain.payloads import FetchedTranscript, SessionFields
from domain.session import Session
from domain.stages import Stage
from domain.transcript import Message

PG_ADMIN = os.environ.get("LIVEDASH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    pg = subprocess.run(
        ["psql", PG_ADMIN, "-Atc", "show server_version"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": _ram_gb(),
        "python": platform.python_version(),
        "postgres": pg or None,
        "sqlite": __import__("sqlite3").sqlite_version,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _ram_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


@contextmanager
def pg_database() -> Iterator[str]:
    url = create_pg_database()
    try:
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def create_pg_database() -> str:
    """A new, uniquely named database; its URL (the caller drops it, or keeps it)."""
    name = f"livedash_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"


@contextmanager
def sqlite_database(folder: str) -> Iterator[str]:
    path = os.path.join(folder, f"bench-{uuid.uuid4().hex[:8]}.db")
    try:
        yield f"sqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)


@contextmanager
def database(kind: str, folder: str) -> Iterator[str]:
    if kind == "postgres":
        with pg_database() as url:
            yield url
    else:
        with sqlite_database(folder) as url:
            yield url


def stats(samples: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "runs": len(samples),
    }


def repeat(runs: int, fn: Callable[[], float]) -> dict[str, float]:
    return stats([fn() for _ in range(runs)])


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def csv_text(n: int, seed: int = 1) -> str:
    rng = __import__("random").Random(seed)
    lines = []
    for i in range(n):
        sid = uuid.UUID(int=rng.getrandbits(128), version=4)
        d = 1 + i % 28
        h = i % 24
        lines.append(
            f"{sid},{d:02d}.10.2026 {h:02d}:00:00,{d:02d}.10.2026 {h:02d}:05:00,192.0.2.{i % 250},"
            f"NL,Dutch,{i % 9 + 1},happy,no,no,transcripts/{sid}.txt,2.5,{i},0.0010,General,"
            f"hallo {i}\n"
        )
    return "".join(lines)


def source_row(i: int, t0: datetime) -> SourceRow:
    return SourceRow(
        external_id=f"bench-{i}",
        start_time=t0,
        end_time=t0 + timedelta(minutes=5),
        ip_address="192.0.2.1",
        country="NL",
        language="Dutch",
        messages_sent=2,
        sentiment="happy",
        escalated="no",
        forwarded_hr="no",
        transcript_url=f"transcripts/bench-{i}.txt",
        avg_response_time=2.5,
        tokens=100,
        tokens_eur=Decimal("0.0010"),
        category="General",
        initial_message="hallo",
    )


def full_pipeline_log(rt: Runtime, company: uuid.UUID, n: int, batch: int = 500) -> int:
    """Writes n sessions that went through all five stages, with their data events, in
    batches (the log a day of `livedash run` leaves behind). Returns the number of events."""
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    text = "[01.10.2026 10:00:00] User: Hoi, wanneer krijg ik mijn loonstrook?\n" * 3
    messages = [
        Message(order=i, role="user", speaker="User", timestamp=t0, content="Hoi?", line=i + 1)
        for i in range(3)
    ]
    events = 0
    for start in range(0, n, batch):
        sessions = []
        for i in range(start, min(n, start + batch)):
            row = source_row(i, t0)
            now = t0 + timedelta(seconds=i)
            s = Session.import_row(company, row, "bench.csv", now)
            lease = now + timedelta(minutes=2)
            a = s.start_stage(Stage.TRANSCRIPT_FETCH, "bench", lease, now)
            s.record_transcript(
                a,
                FetchedTranscript(
                    url=f"https://t.example/{i}",
                    text=text,
                    sha256="0" * 64,
                    size=len(text),
                    content_type="text/plain",
                    fetched_at=now,
                ),
                now,
                {"size": len(text)},
            )
            a = s.start_stage(Stage.SESSION_CREATION, "bench", lease, now)
            fields = SessionFields(
                start_time=row.start_time,
                end_time=row.end_time,
                country="NL",
                language="nl",
                upstream_sentiment="happy",
                upstream_sentiment_label="POSITIVE",
                escalated=False,
                forwarded_hr=False,
                messages_sent=3,
                message_count=3,
                initial_message="hallo",
                ip_address="192.0.2.1",
                avg_response_time=2.5,
                tokens=100,
                tokens_eur=Decimal("0.001"),
                upstream_category="General",
                first_message_at=t0,
                last_message_at=t0,
            )
            s.record_parsed(a, messages, fields, now, {"messages": 3})
            for stage in (Stage.AI_ANALYSIS, Stage.QUESTION_EXTRACTION):
                a = s.start_stage(stage, "bench", lease, now)
                s.complete_stage(stage, a, now, {"bench": True})
            events += len(s.pending_events)
            sessions.append(s)
        rt.app.save_batch(sessions)
    return events


def fill_status_tables(engine: Any, n: int) -> None:
    """n synthetic sessions straight into the status tables (5 rows each) and the overview,
    generated by the database itself: the report's query time depends on table size, not on
    how the rows got there, and a million sessions through the event store would take long."""
    company = uuid.uuid4()
    # Per session i: a mix of finished, waiting, failed (half retrying) and running sessions.
    case = (
        "CASE WHEN s.n % 20 < 14 THEN 'COMPLETED' "
        "WHEN s.n % 20 < 16 THEN (CASE WHEN st.k < 3 THEN 'COMPLETED' ELSE 'PENDING' END) "
        "WHEN s.n % 20 < 18 THEN (CASE WHEN st.k = 0 THEN 'COMPLETED' WHEN st.k = 1 THEN 'FAILED' "
        "ELSE 'PENDING' END) "
        "WHEN s.n % 20 = 18 THEN (CASE WHEN st.k = 0 THEN 'COMPLETED' WHEN st.k = 1 THEN 'SKIPPED' "
        "WHEN st.k = 2 THEN 'IN_PROGRESS' ELSE 'PENDING' END) "
        "ELSE (CASE WHEN st.k = 0 THEN 'COMPLETED' ELSE 'PENDING' END) END"
    )
    stages = "('CSV_IMPORT',0),('TRANSCRIPT_FETCH',1),('SESSION_CREATION',2),('AI_ANALYSIS',3),('QUESTION_EXTRACTION',4)"
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            case = case.replace("%", "%%")
            conn.exec_driver_sql(
                f"""
                INSERT INTO session_stage_status (session_id, stage, company_id, external_id, status,
                    attempt, retry_count, retry_at, error_type, error_message, metadata, updated_at)
                SELECT md5('{company}' || s.n)::uuid, st.name, '{company}'::uuid, 'syn-' || s.n, {case},
                    1, 0, CASE WHEN s.n %% 40 = 16 AND st.k = 1 THEN now() + interval '1 hour' END,
                    CASE WHEN s.n %% 20 IN (16, 17) AND st.k = 1 THEN 'http_404' END,
                    CASE WHEN s.n %% 20 IN (16, 17) AND st.k = 1 THEN 'HTTP 404 Not Found' END,
                    '{{}}'::json, now() - (s.n || ' seconds')::interval
                FROM generate_series(1, {n}) AS s(n)
                CROSS JOIN (VALUES {stages}) AS st(name, k)
                """
            )
            conn.exec_driver_sql("ANALYZE session_stage_status")
        else:
            conn.exec_driver_sql(
                f"""
                WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}),
                st(name, k) AS (VALUES {stages})
                INSERT INTO session_stage_status (session_id, stage, company_id, external_id, status,
                    attempt, retry_count, retry_at, error_type, error_message, metadata, updated_at)
                SELECT printf('%032x', s.n), st.name, '{company.hex}', 'syn-' || s.n, {case},
                    1, 0, CASE WHEN s.n % 40 = 16 AND st.k = 1 THEN '2099-01-01 00:00:00.000000' END,
                    CASE WHEN s.n % 20 IN (16, 17) AND st.k = 1 THEN 'http_404' END,
                    CASE WHEN s.n % 20 IN (16, 17) AND st.k = 1 THEN 'HTTP 404 Not Found' END,
                    '{{}}', strftime('%Y-%m-%d %H:%M:%f000', 'now', '-' || s.n || ' seconds')
                FROM s CROSS JOIN st
                """
            )
            conn.exec_driver_sql("ANALYZE")
        conn.exec_driver_sql(
            "INSERT INTO pipeline_overview (company_id, stage, status, count) "
            "SELECT company_id, stage, status, count(*) FROM session_stage_status "
            "GROUP BY company_id, stage, status"
        )
        conn.exec_driver_sql(  # the extra bucket the projection keeps for scheduled retries
            "INSERT INTO pipeline_overview (company_id, stage, status, count) "
            "SELECT company_id, stage, 'RETRY_SCHEDULED', count(*) "
            "FROM session_stage_status WHERE status = 'FAILED' AND retry_at IS NOT NULL "
            "GROUP BY company_id, stage"
        )


TRANSCRIPT_BODY = (
    b"[01.10.2026 10:00:00] User: Hoi, ik ben ziek. Wie moet ik bellen?\n"
    b"[01.10.2026 10:00:04] Assistant: Wat vervelend! Meld je ziek bij je leidinggevende.\n"
    b"Je kunt ook de HR-lijn bellen.\n"
    b"[01.10.2026 10:01:10] User: Moet ik een doktersbriefje hebben?\n"
    b"[01.10.2026 10:01:12] Assistant: Nee, pas vanaf de derde ziektedag.\n"
)


def serve_transcripts() -> None:
    """A keep-alive HTTP server on 127.0.0.1 that answers every GET with one transcript;
    prints its URL, then serves until stdin closes."""
    import http.server
    import sys
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes; with Nagle on, the body waits for the
        # client's delayed ACK (40 ms a request; measured 22 fetches/s on one thread).
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(TRANSCRIPT_BODY)))
            self.end_headers()
            self.wfile.write(TRANSCRIPT_BODY)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    print(f"http://127.0.0.1:{httpd.server_address[1]}", flush=True)
    sys.stdin.read()  # the parent closes our stdin (or exits): stop


class TranscriptServer:
    """`serve_transcripts` in a child process. The transcripts come from another host in real
    use: served from the benchmark's own process, the server's Python work would compete with
    the daemon for the GIL and be measured as the daemon's."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> TranscriptServer:
        import sys

        code = "import benchlib; benchlib.serve_transcripts()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=os.path.dirname(os.path.abspath(__file__)),
            env={**os.environ, "PYTHONPATH": os.pathsep.join(_import_path())},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.__exit__()
            raise RuntimeError("the transcript server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


def _import_path() -> list[str]:
    """This folder (for benchlib) and the repository (for the packages benchlib imports)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return [here, os.path.dirname(here)]


def pipeline_csv(n: int, base_url: str, seed: int = 5) -> str:
    rng = __import__("random").Random(seed)
    lines = []
    for i in range(n):
        sid = uuid.UUID(int=rng.getrandbits(128), version=4)
        lines.append(
            f"{sid},01.10.2026 10:00:00,01.10.2026 10:05:00,192.0.2.{i % 250},NL,Dutch,2,happy,no,"
            f"no,{base_url}/t/{sid}.txt,2.5,{i},0.0010,General,hoi\n"
        )
    return "".join(lines)
