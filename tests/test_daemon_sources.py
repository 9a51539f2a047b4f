"""The daemon through the real `livedash` command: two daemons sharing one PostgreSQL, and the
scheduled import of a remote CSV full of bad rows (every row a session or a rejection;
an unchanged file, answered 304, writes nothing)."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from domain.session import Session
from domain.stages import STAGE_ORDER, Stage, Status
from projections.schema import sessions as sessions_table
from tests.conftest import LIVEDASH, Livedash
from tests.harness import runtime
from tests.servers import Route, RouteServer, text
from tests.test_csv_rows import BAD_VALUES, line

CHAT = (
    "[01.10.2026 10:00:05] User: Hallo, ik ben ziek. Wie moet ik bellen?\n"
    "[01.10.2026 10:00:09] Assistant: Meld je ziek bij je leidinggevende.\n"
)


def _good_line(i: int, server: RouteServer, delay: float = 0.0) -> str:
    path = f"/t/{i}.txt"
    server.routes[path] = text(CHAT, delay=delay)
    return (
        f"two-{i:04d},01.10.2026 10:00:00,01.10.2026 10:05:00,192.0.2.1,NL,dutch,2,happy,"
        f"no,no,{server.url(path)},2.5,100,0.0010,Sick,hallo\n"
    )


def test_two_daemons_on_postgresql_never_run_an_attempt_twice(pg_url: str, tmp_path: Path) -> None:
    n = 300
    with RouteServer() as server:
        csv = tmp_path / "two.csv"
        csv.write_text("".join(_good_line(i, server, delay=0.02) for i in range(n)))
        ld = Livedash(pg_url, tmp_path, _env())
        ld("init")
        ld("company", "add", "Two", "--csv-url", str(csv))
        ld("import", str(csv), "--company", "Two")
        # A short heartbeat: the second daemon gets its share of the partitions within a
        # second, long before the work is done (time made short by configuration).
        args = [
            "run",
            "--until-idle",
            "--csv-interval",
            "0",
            "--poll-interval",
            "0.2",
            "--heartbeat",
            "0.3",
            "--claim-timeout",
            "3",
        ]
        procs = [
            subprocess.Popen(
                [*LIVEDASH, *args, "--worker-id", f"daemon-{k}"],
                env={**ld.env, "LIVEDASH_DATABASE_URL": pg_url},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in (1, 2)
        ]
        for proc in procs:
            _out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err
        # One GET per transcript: no fetch attempt ran twice, in either daemon.
        fetched = [server.count(f"/t/{i}.txt") for i in range(n)]
        assert Counter(fetched) == {1: n}

    with runtime(pg_url, create=False) as rt:
        rt.runner.catch_up()
        with rt.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(select(sessions_table.c.session_id))]
        assert len(ids) == n
        started: Counter[tuple[object, Stage, int]] = Counter()
        handed_back: set[tuple[object, Stage, int]] = set()
        workers: Counter[str] = Counter()
        for sid in ids:
            for e in rt.app.session_events(sid):
                if isinstance(e, Session.StageStarted):
                    started[(sid, e.stage, e.attempt)] += 1
                    workers[e.worker] += 1
                elif isinstance(e, Session.StageReleased):  # e.g. host_busy: never started
                    handed_back.add((sid, e.stage, e.attempt))
        for s in rt.app.get_sessions(ids):
            assert all(s.stages[st].status is Status.COMPLETED for st in STAGE_ORDER), s.external_id
    assert max(started.values()) == 1, "a stage attempt was claimed twice"
    # Four worker stages, one attempt each that ran (a claim handed back unstarted is none).
    assert len(set(started) - handed_back) == n * 4
    assert set(workers) == {"daemon-1", "daemon-2"}, workers  # both daemons took work


def test_scheduled_remote_import_rejects_bad_rows_and_skips_an_unchanged_file(
    livedash: Livedash, tmp_path: Path
) -> None:
    with RouteServer() as server:
        good = [_good_line(i, server) for i in range(5)]
        bad = [line(**{"session_id": f"bad-{k}", **overrides}) for k, (_, overrides, _) in
               enumerate(BAD_VALUES)]  # fmt: skip
        body = "".join(good[:2] + bad + good[2:])
        server.routes["/export.csv"] = Route(
            body=body.encode(), content_type="text/csv", etag='"v1"'
        )
        livedash("init")
        livedash("company", "add", "Remote", "--csv-url", server.url("/export.csv"))
        job = Livedash(
            livedash.database_url,
            livedash.cwd,
            {**livedash.env, "LIVEDASH_FETCH_ALLOW_HOSTS": "127.0.0.1"},
        )
        run = ["run", "--until-idle", "--csv-interval", "3600", "--poll-interval", "0.2"]
        job(*run)  # the daemon imports at start, then works the new sessions to the end
        job(*run)  # the same file again: a conditional GET answered 304
        assert server.count("/export.csv") == 2
        assert server.requests("/export.csv")[1].headers.get("If-None-Match") == '"v1"'

    runs = json.loads(livedash("imports", "--company", "Remote", "--json").stdout)
    by_outcome = {r["outcome"]: r for r in runs}
    first, second = by_outcome["ok"], by_outcome["not_modified"]
    assert first["rows_seen"] == len(good) + len(bad)
    assert (first["new"], first["rejected"]) == (len(good), len(bad))
    by_row = {r["row_number"]: r["reason"] for r in first["rejections"]}
    for k, (_, _, reason) in enumerate(BAD_VALUES):
        got = by_row[len(good[:2]) + 1 + k]  # rows are numbered from 1; two good rows first
        assert reason in got, (got, reason)
    assert (second["new"], second["changed"], second["http_status"]) == (0, 0, 304)

    status = json.loads(livedash("status", "--json").stdout)
    assert status["total_sessions"] == len(good)
    assert status["stages"]["QUESTION_EXTRACTION"]["COMPLETED"] == len(good)


def _env() -> dict[str, str]:
    import os

    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
    return {**env, "PYTHONPATH": str(REPO), "LIVEDASH_FETCH_ALLOW_HOSTS": "127.0.0.1"}
