"""`livedash stage pause|resume` and the circuit breaker, through the real command and daemons.

A pause recorded while daemons run holds in each of them (one on SQLite, a fleet of two on
PostgreSQL): the paused company's AI work waits while another company's goes through, a stage
paused for everyone waits for all, and a resume lets it all finish. The breaker: the OpenAI-
compatible test server answers 503 until the breaker has opened and failed two probes; during
the outage only probes reach it, the cool-down doubles up to its cap, and when the server
recovers a probe closes the breaker and every session is analysed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cli import cmd_reports
from cli.runtime import Runtime
from domain.company import Company, company_id_for
from domain.pipeline import PIPELINE_ID, Pipeline
from processors.clock import utc_now
from processors.ingest import importer as csv_import
from projections.models import StatusReport
from projections.queries import status_report
from tests.conftest import LIVEDASH, Livedash
from tests.harness import runtime
from tests.openai_server import ChatRequest, FakeOpenAI, Reply, ok, server_error
from tests.servers import RouteServer, text

CHAT = (
    "[01.10.2026 10:00:05] User: Hallo, ik ben ziek. Wie moet ik bellen?\n"
    "[01.10.2026 10:00:09] Assistant: Meld je ziek bij je leidinggevende.\n"
)
AI, QE = "AI_ANALYSIS", "QUESTION_EXTRACTION"
RUN = [*LIVEDASH, "run", "--csv-interval", "0", "--poll-interval", "0.2"]


def export(tmp_path: Path, chats: RouteServer, prefix: str, n: int) -> Path:
    lines = []
    for i in range(n):
        chats.routes[f"/{prefix}{i}.txt"] = text(CHAT)
        lines.append(
            f"{prefix}-{i},01.10.2026 10:00:00,01.10.2026 10:05:00,192.0.2.1,NL,dutch,2,happy,"
            f"no,no,{chats.url(f'/{prefix}{i}.txt')},2.5,100,0.0010,Sick,hallo\n"
        )
    path = tmp_path / f"{prefix}.csv"
    path.write_text("".join(lines), encoding="utf-8")
    return path


@contextmanager
def daemons(
    livedash: Livedash, logs: list[Path], *args: str, **env: str
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`livedash run` per log file, stopped with SIGTERM (and checked) at the end."""
    procs = []
    for i, log in enumerate(logs):
        procs.append(
            subprocess.Popen(
                [
                    *LIVEDASH,
                    "run",
                    "--csv-interval",
                    "0",
                    "--poll-interval",
                    "0.2",
                    *args,
                    "--worker-id",
                    f"d{i}",
                ],
                cwd=livedash.cwd,
                env={**livedash.env, "LIVEDASH_DATABASE_URL": livedash.database_url, **env},
                stdout=subprocess.DEVNULL,
                stderr=log.open("wb"),
            )
        )
    try:
        yield procs
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=60) for p in procs]
    assert codes == [0] * len(procs), [log.read_text()[-3000:] for log in logs]


def until(check: Callable[[], Any], what: str, logs: list[Path], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    tails = "\n".join(log.read_text()[-2000:] for log in logs)
    raise AssertionError(f"not within {timeout}s: {what}\n{tails}")


def logged(logs: list[Path], kind: str, about: str = "") -> bool:
    """Every daemon logged an event of ``kind`` (its JSON log on stderr) that mentions
    ``about``."""
    return all(
        any(f'"{kind}"' in line and about in line for line in log.read_text().splitlines())
        for log in logs
    )


def counts(rt: Runtime, company: str) -> dict[str, dict[str, int]]:
    """The status projection's counts (the daemons keep it up) for one company."""
    with rt.engine.connect() as conn:
        return status_report(conn, company_id_for(company), company).stages


def as_text(report: dict[str, Any]) -> str:
    """What `livedash status` prints for this `status --json` (rendered here: each run of
    the command costs seconds on a busy machine)."""
    with cmd_reports.console.capture() as out:
        cmd_reports._print_status(StatusReport.model_validate(report))
    return out.get()


def register(rt: Runtime, name: str, csv: Path) -> Company:
    """Registered in-process: the commands under test are `stage`, `status` and `run`."""
    return rt.app.register_company(Company.register(name, str(csv), utc_now()))


def load(rt: Runtime, company: Company, csv: Path) -> None:
    done = csv_import.run_import(rt.app, rt.runner, company, csv_import.file_reader(csv), utc_now)
    assert done.outcome == "ok", done


def test_a_pause_holds_in_every_running_daemon(livedash: Livedash, tmp_path: Path) -> None:
    fleet = 2 if livedash.database_url.startswith("postgresql") else 1
    logs = [tmp_path / f"d{i}.log" for i in range(fleet)]
    with RouteServer() as chats, runtime(livedash.database_url) as rt:
        csv_a, csv_b = export(tmp_path, chats, "a", 3), export(tmp_path, chats, "b", 3)
        a_co, b_co = register(rt, "A", csv_a), register(rt, "B", csv_b)
        env = {"LIVEDASH_AI_PROVIDER": "offline", "LIVEDASH_FETCH_ALLOW_HOSTS": "127.0.0.1"}
        with daemons(livedash, logs, **env):
            until(lambda: logged(logs, "partitions") or fleet == 1, "partitions held", logs)
            livedash("--actor", "tester", "stage", "pause", AI, "--company", "A", "--reason", "ask")
            livedash("stage", "pause", "question-extraction", "--reason", "all of them")
            until(lambda: logged(logs, "stage_paused", QE), "every daemon saw the pauses", logs)
            assert logged(logs, "stage_paused", AI)
            load(rt, a_co, csv_a)
            load(rt, b_co, csv_b)
            until(lambda: counts(rt, "B")[AI]["COMPLETED"] == 3, "B analysed", logs)
            until(lambda: counts(rt, "A")["SESSION_CREATION"]["COMPLETED"] == 3, "A", logs)
            a, b = counts(rt, "A"), counts(rt, "B")
            assert a[AI]["COMPLETED"] == a[AI]["IN_PROGRESS"] == 0 and a[AI]["PENDING"] == 3
            assert b[QE]["COMPLETED"] == 0 and b[QE]["PENDING"] == 3
            report = json.loads(livedash("status", "--json").stdout)
            paused = {(p["stage"], p["company"]): p for p in report["paused"]}
            assert paused[(AI, "A")]["actor"] == "tester"
            assert paused[(AI, "A")]["reason"] == "ask"
            assert paused[(QE, None)]["reason"] == "all of them"
            assert "paused: AI_ANALYSIS for A by tester" in as_text(report)
            livedash("stage", "resume", AI, "--company", "A", "--reason", "answered")
            livedash("stage", "resume", QE)
            for name in ("A", "B"):
                until(lambda c=name: counts(rt, c)[QE]["COMPLETED"] == 3, name, logs)  # type: ignore[misc]
            assert logged(logs, "stage_resumed")
        if fleet == 1:  # the command's answer is the same on both databases
            again = livedash("stage", "resume", QE, "--json", check=False)
            assert again.code == 1 and "is not paused" in again.stderr
            assert json.loads(again.stdout)["paused"] == []


def _pipeline(rt: Runtime) -> list[Any]:
    return [e for e in rt.app.events.get(PIPELINE_ID) if isinstance(e, Pipeline.BreakerChanged)]


def test_the_breaker_lets_only_probes_through_an_outage(sqlite_url: str, tmp_path: Path) -> None:
    import os

    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
    livedash = Livedash(sqlite_url, tmp_path, {**env, "PYTHONPATH": str(REPO)})
    logs = [tmp_path / "d0.log"]
    outage = threading.Event()
    outage.set()

    def script(_request: ChatRequest) -> Reply:
        return server_error(503) if outage.is_set() else ok()

    n, window, concurrency = 12, 4, 2
    with (
        RouteServer() as chats,
        FakeOpenAI(script, api_key="sk-b") as llm,
        runtime(sqlite_url) as rt,
    ):
        csv = export(tmp_path, chats, "s", n)
        load(rt, register(rt, "C", csv), csv)
        ai_env = {
            "OPENAI_API_KEY": "sk-b",
            "OPENAI_BASE_URL": llm.base_url,
            "LIVEDASH_AI_MODEL": "gpt-4o-mini",
            "LIVEDASH_FETCH_ALLOW_HOSTS": "127.0.0.1",
        }
        args = ["--concurrency", f"{AI}={concurrency}", "--breaker-window", str(window)]
        args += ["--breaker-cool-down", "0.3", "--breaker-max-cool-down", "0.6"]
        with daemons(livedash, logs, *args, **ai_env):
            # Opened, then two probes failed (each opening again): the outage is over then.
            until(
                lambda: sum(isinstance(e, Pipeline.BreakerOpened) for e in _pipeline(rt)) >= 3,
                "the breaker opened and two probes failed",
                logs,
            )
            during = llm.total
            # Read after the count: a probe's grant is stored before its request is sent.
            probes = sum(isinstance(e, Pipeline.BreakerHalfOpened) for e in _pipeline(rt))
            outage.clear()
            until(lambda: counts(rt, "C")[AI]["COMPLETED"] == n, "all analysed", logs)
            report = json.loads(livedash("status", "--json").stdout)
            events = _pipeline(rt)
    kinds = [type(e).__name__ for e in events]
    assert kinds[:5] == [
        "BreakerOpened",
        "BreakerHalfOpened",
        "BreakerOpened",
        "BreakerHalfOpened",
        "BreakerOpened",
    ], kinds
    assert kinds[-1] == "BreakerClosed"
    opened = [e.breaker for e in events if isinstance(e, Pipeline.BreakerOpened)]
    assert f"of the last {window} attempts failed" in opened[0].reason
    assert "server_error" in opened[0].reason
    assert "probe failed: server_error" in opened[1].reason
    assert [b.cool_down for b in opened[:3]] == [0.3, 0.6, 0.6]  # doubles, capped
    # Until the third opening: the window's attempts, those already running when it opened,
    # and one request per probe. Without the breaker every session would have been tried.
    assert during <= window + concurrency + probes < n, (during, kinds)
    assert "succeeded" in events[-1].breaker.reason
    (breaker,) = report["breakers"]
    assert breaker["stage"] == AI and breaker["state"] == "closed"
    assert breaker["provider"] == llm.base_url.split("/")[2]
    assert "circuit breaker closed: AI_ANALYSIS" in as_text(report)
    log = logs[0].read_text()
    for kind in ("breaker_open", "breaker_half_open", "breaker_probe", "breaker_closed"):
        assert f'"{kind}"' in log, kind
