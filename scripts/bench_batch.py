"""One Batch API round trip against the fake OpenAI server, next to the standard mode.

    .venv/bin/python scripts/bench_batch.py                  # 50 sessions, SQLite
    .venv/bin/python scripts/bench_batch.py --postgres       # the same on a fresh PostgreSQL db
    .venv/bin/python scripts/bench_batch.py --sessions 200 --latency 0.3

Both runs import the same sessions, fetch and parse them, then analyse them with the real
daemon, event store and `openai` client: ``standard`` sends one chat request per session (the
server answers each after --latency seconds), ``batch`` sends them as one Batch API job (the
server finishes it on the --polls-th poll, polled every --poll seconds). Printed per mode:
HTTP requests the server received, paid answers, wall time of the daemon run, recorded cost
(EUR, from the usage events) and, for batch mode, what the same tokens cost at the standard
price. The fake server's batch turnaround is not OpenAI's (up to 24 h): wall time here
measures our overhead, not the provider's queue.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai
import psycopg

from cli.bootstrap import build_processors
from cli.runtime import Runtime
from cli.settings import Settings
from domain.company import Company
from domain.stages import WORKER_STAGES, Stage, Status
from processors.ai.batch_api import BatchAPI
from processors.ai.config import OpenAIAnalyserConfig
from processors.ai.openai_client import OpenAIAnalyser
from processors.ai.pricing import cost
from processors.clock import utc_now
from processors.ingest import importer as csv_import
from processors.runtime.batch_settings import BatchSettings
from processors.runtime.batches import BatchDriver
from processors.runtime.config import DaemonConfig, StageConfig
from processors.runtime.daemon import Daemon
from processors.runtime.reporting import JsonLogReporter
from processors.stages.analysis import AnalysisProcessor
from tests.openai_server import FakeOpenAI
from tests.servers import RouteServer, text

AI = Stage.AI_ANALYSIS
KEY = "sk-bench"
LINES = [
    "Hoi, ik ben ziek. Wie moet ik bellen?",
    "Meld je ziek bij je leidinggevende via de app.",
    "Moet ik een doktersbriefje hebben?",
    "Nee, pas vanaf de derde ziektedag. Beterschap!",
    "Hoeveel vakantiedagen heb ik nog dit jaar?",
    "Dat zie je in het personeelsportaal onder Verlof.",
]


def chat(i: int) -> str:
    n = 4 + i % 12
    return "".join(
        f"[01.10.2026 10:{m:02d}:05] {'User' if m % 2 == 0 else 'Assistant'}: "
        f"{LINES[(i + m) % len(LINES)]} ({i})\n"
        for m in range(n)
    )


@contextlib.contextmanager
def database(postgres: bool) -> Iterator[str]:
    if not postgres:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    name = f"livedash_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
    ) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(
            host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
        ) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    n = args.sessions
    chats = RouteServer({f"/c{i}.txt": text(chat(i)) for i in range(n)}).start()
    server = FakeOpenAI(api_key=KEY, latency=args.latency).start()
    server.batches.polls_to_finish = args.polls
    cfg = OpenAIAnalyserConfig(api_key=KEY, base_url=server.base_url, timeout=10)
    try:
        with database(args.postgres) as url, tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "s.csv"
            csv.write_text(
                "".join(
                    f"s{i},01.10.2026 10:00:00,01.10.2026 10:05:00,192.0.2.1,NL,dutch,2,happy,"
                    f"no,no,{chats.url(f'/c{i}.txt')},2.5,100,0.0010,Sick,hallo\n"
                    for i in range(n)
                )
            )
            rt = Runtime.open(url, create=True)
            try:
                company = rt.app.register_company(Company.register("Bench", str(csv), utc_now()))
                csv_import.run_import(
                    rt.app, rt.runner, company, csv_import.file_reader(csv), utc_now
                )
                return analyse(rt, mode, cfg, server, args, url)
            finally:
                rt.close()
    finally:
        server.stop()
        chats.stop()


def analyse(
    rt: Runtime,
    mode: str,
    cfg: OpenAIAnalyserConfig,
    server: FakeOpenAI,
    args: argparse.Namespace,
    url: str,
) -> dict[str, Any]:
    settings = Settings(database_url=url, fetch_allow_hosts=("127.0.0.1",))
    configs = {
        s: StageConfig(concurrency=args.concurrency if s is AI else 8, timeout=30, lease_seconds=30)
        for s in WORKER_STAGES
    }
    processors = build_processors(settings, {}.get, configs)
    scheduled: list[Any] = []
    driver = None
    stages = WORKER_STAGES
    if mode == "batch":
        client = openai.OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
        driver = BatchDriver(rt.app, rt.engine, BatchAPI(client), cfg,
                             BatchSettings(size=args.sessions, poll_interval=args.poll, gather=args.gather),
                             utc_now, JsonLogReporter(stream=io.StringIO()).log)  # fmt: skip
        scheduled.append(driver)
        stages = tuple(s for s in WORKER_STAGES if s is not AI)
    else:
        processors[AI] = AnalysisProcessor(OpenAIAnalyser(cfg))
    daemon = Daemon(
        rt.app, rt.runner, processors,
        DaemonConfig(worker_id=f"bench-{mode}", stages=stages, stage_configs=configs,
                     until_idle=True, idle_horizon=5, poll_interval=0.05, level_interval=0.1),
        utc_now, JsonLogReporter(stream=io.StringIO()), scheduled,
    )  # fmt: skip
    stop = threading.Timer(300, daemon.request_stop)
    stop.start()
    before = server.total
    began = time.monotonic()
    try:
        daemon.run()
    finally:
        stop.cancel()
        for p in processors.values():
            getattr(p, "close", lambda: None)()
        if driver is not None:
            driver.close()
    wall = time.monotonic() - began
    sessions = rt.app.get_sessions(
        [s.id for s in rt.app.get_sessions(_ids(rt))]  # every imported session
    )
    usages = [u for s in sessions for _, _, u in s.ai_usage]
    done = sum(1 for s in sessions if s.stages[AI].status is Status.COMPLETED)
    eur = sum((u.cost_eur or Decimal(0) for u in usages), Decimal(0))
    standard_eur = Decimal(0)
    for u in usages:
        price = cfg.prices.lookup(u.model_returned or u.model_requested, u.received_at.date())
        assert price is not None
        standard_eur += cost(price, u.prompt_tokens, u.cached_tokens, u.completion_tokens,
                             cfg.eur_rate)[1]  # fmt: skip
    b = server.batches
    http = (server.total - before) if mode == "standard" else b.calls
    return {
        "mode": mode, "sessions": len(sessions), "analysed": done,
        "http_requests": http, "paid_answers": len(usages),
        "wall_s": round(wall, 2), "cost_eur": eur, "cost_at_standard_eur": standard_eur,
        "batch_ids": [o.provider_batch_id for o in (driver.submitted if driver else [])],
        "price_source": usages[0].price_source if usages else None,
    }  # fmt: skip


def _ids(rt: Runtime) -> list[Any]:
    from sqlalchemy import select

    from projections.schema import session_stage_status as sss

    with rt.engine.connect() as conn:
        return list(conn.execute(select(sss.c.session_id).where(sss.c.stage == AI.value)).scalars())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per chat answer")
    parser.add_argument("--concurrency", type=int, default=8, help="standard mode's AI workers")
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between batch polls")
    parser.add_argument("--polls", type=int, default=3, help="poll on which the batch is done")
    parser.add_argument("--gather", type=float, default=5.0, help="batch gather seconds")
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    db = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{args.sessions} sessions on {db}, chat latency {args.latency}s, "
          f"AI concurrency {args.concurrency}, batch done on poll {args.polls} "
          f"(every {args.poll}s)")  # fmt: skip
    results = [run("standard", args), run("batch", args)]
    for r in results:
        print(
            f"{r['mode']:>8}: {r['analysed']}/{r['sessions']} analysed, "
            f"{r['http_requests']} HTTP requests to the AI server, {r['paid_answers']} paid "
            f"answers, {r['wall_s']} s, cost €{r['cost_eur']:.6f} "
            f"(same tokens at standard price €{r['cost_at_standard_eur']:.6f})"
        )
    batch = results[1]
    print(f"   batch ids: {', '.join(str(i) for i in batch['batch_ids'])}; "
          f"price source: {batch['price_source']}")  # fmt: skip
    saved = batch["cost_at_standard_eur"] - batch["cost_eur"]
    print(f"   batch saves €{saved:.6f} of €{batch['cost_at_standard_eur']:.6f} "
          f"({saved / batch['cost_at_standard_eur']:.0%})")  # fmt: skip


if __name__ == "__main__":
    main()
