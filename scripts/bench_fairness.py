"""Fairness between companies: how long a few fresh sessions of company B wait behind a
backlog of company A, with `run --fairness company` and with `fifo` (the reference).

    python scripts/bench_fairness.py --backlog 3000 --fresh 10

Imports the backlog for A, then the fresh sessions for B (both before the daemon starts),
then runs the real daemon on TRANSCRIPT_FETCH and SESSION_CREATION (transcripts from a local
server in a child process) until idle. Prints, per database and mode, the seconds from the
daemon's start until all of B's sessions are created and until all of A's are.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from uuid import UUID

from benchlib import TranscriptServer, database, pipeline_csv
from sqlalchemy import select

from cli.bootstrap import build_processors, stage_configs
from cli.runtime import Runtime, events_table
from cli.secrets import environment_secrets
from cli.settings import Settings
from domain.company import Company
from domain.session import Session
from domain.stages import Stage
from processors.clock import utc_now
from processors.ingest.importer import file_reader, run_import
from processors.runtime.config import DaemonConfig
from processors.runtime.daemon import Daemon
from processors.runtime.reporting import JsonLogReporter
from projections.notify import PgListener
from projections.schema import sessions as sessions_table

STAGES = (Stage.TRANSCRIPT_FETCH, Stage.SESSION_CREATION)


def _import(rt: Runtime, tmp: str, name: str, n: int, base_url: str, seed: int) -> Company:
    path = Path(tmp) / f"{name}-{uuid.uuid4().hex[:6]}.csv"
    path.write_text(pipeline_csv(n, base_url, seed), encoding="utf-8")
    company = rt.app.register_company(Company.register(name, str(path), utc_now()))
    run_import(rt.app, rt.runner, company, file_reader(path), utc_now)
    rt.runner.catch_up()
    return company


@contextmanager
def _daemon(rt: Runtime, url: str, kind: str, fair: bool) -> Iterator[Daemon]:
    """What `livedash run --stages TRANSCRIPT_FETCH,SESSION_CREATION --fairness ...` builds,
    in this process, with a NOTIFY listener on PostgreSQL."""
    configs = stage_configs(120.0, {}, {Stage.TRANSCRIPT_FETCH: 32, Stage.SESSION_CREATION: 4})
    config = DaemonConfig(
        worker_id="bench-fair",
        stages=STAGES,
        stage_configs=configs,
        until_idle=True,
        idle_horizon=0,
        poll_interval=0.05 if kind == "sqlite" else 1.0,
        level_interval=2.0,
        company_fairness=fair,
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


def _created(rt: Runtime) -> dict[UUID, list[datetime]]:
    """Per company, when each of its sessions' SESSION_CREATION completed."""
    with rt.engine.connect() as conn:
        rows = conn.execute(select(sessions_table.c.session_id, sessions_table.c.company_id))
        owners = {r[0]: r[1] for r in rows}
    out: dict[UUID, list[datetime]] = {}
    for sid, company in owners.items():
        for e in rt.app.session_events(sid):
            if isinstance(e, Session.StageCompleted) and e.stage is Stage.SESSION_CREATION:
                out.setdefault(company, []).append(e.timestamp)
    return out


def run_once(kind: str, fair: bool, backlog: int, fresh: int) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        TranscriptServer() as server,
        database(kind, tmp) as url,
        Runtime.open(url, create=True) as rt,
    ):
        a = _import(rt, tmp, "A", backlog, server.url, seed=1)
        b = _import(rt, tmp, "B", fresh, server.url, seed=2)
        with _daemon(rt, url, kind, fair) as daemon:
            began = utc_now()
            summary = daemon.run()
        done = _created(rt)
        assert summary.stopped_by == "idle", summary
        assert len(done.get(a.id, [])) == backlog and len(done.get(b.id, [])) == fresh, (
            "not every session was created"
        )
        b_all = (max(done[b.id]) - began).total_seconds()
        a_all = (max(done[a.id]) - began).total_seconds()
        a_before_b = sum(1 for t in done[a.id] if t < max(done[b.id]))
        return {"b_done_s": b_all, "a_done_s": a_all, "a_done_before_b": a_before_b}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=3000)
    parser.add_argument("--fresh", type=int, default=10)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--databases", default="sqlite,postgres")
    args = parser.parse_args()
    print(f"backlog {args.backlog} sessions of A, then {args.fresh} of B; medians of {args.runs}")
    for kind in args.databases.split(","):
        results: dict[str, list[dict[str, float]]] = {"company": [], "fifo": []}
        for i in range(args.runs):
            modes = ["company", "fifo"] if i % 2 == 0 else ["fifo", "company"]
            for mode in modes:
                results[mode].append(run_once(kind, mode == "company", args.backlog, args.fresh))
        medians = {
            mode: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            for mode, runs in results.items()
        }
        for mode, m in medians.items():
            print(
                f"{kind:9s} {mode:8s} B done {m['b_done_s']:7.2f} s   A done {m['a_done_s']:7.2f} s"
                f"   A sessions done before B's last {m['a_done_before_b']:6.0f}"
            )
        ref, fair = medians["fifo"], medians["company"]
        print(
            f"{kind:9s} company/fifo: B {fair['b_done_s'] / ref['b_done_s']:.2f}x, "
            f"A {fair['a_done_s'] / ref['a_done_s']:.2f}x"
        )


if __name__ == "__main__":
    main()
