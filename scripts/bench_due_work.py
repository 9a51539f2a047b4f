"""What finding due work costs on a backlog, with `stage_ready` and with the scan it replaced.

    python scripts/bench_due_work.py --sessions 100000 --databases postgres

Imports n rows (their transcripts are never fetched), then times `due_work` for
SESSION_CREATION, the query the daemon's level trigger runs every few seconds. On a backlog
almost no SESSION_CREATION is due, so the old scan read every PENDING row.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import bench_pipeline
from benchlib import database

from cli.runtime import Runtime
from domain.stages import Stage
from processors.clock import utc_now
from projections import work


def measure(kind: str, n: int, repeats: int = 5) -> dict[str, float]:
    out: dict[str, float] = {}
    queued = work.QUEUED
    with (
        tempfile.TemporaryDirectory() as tmp,
        database(kind, tmp) as url,
        Runtime.open(url, create=True) as rt,
    ):
        company = bench_pipeline._import_company(rt, tmp, n, "http://127.0.0.1:9")
        try:
            with rt.engine.connect() as conn:
                for label, stages in (("stage_ready", queued), ("scan", ())):
                    work.QUEUED = stages  # () sends every stage down the scan
                    work.due_work(conn, Stage.SESSION_CREATION, utc_now(), [company.id], 500)
                    began = time.perf_counter()
                    for _ in range(repeats):
                        work.due_work(conn, Stage.SESSION_CREATION, utc_now(), [company.id], 500)
                    out[label] = (time.perf_counter() - began) / repeats * 1000
        finally:
            work.QUEUED = queued
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--databases", default="sqlite,postgres")
    args = parser.parse_args()
    for kind in args.databases.split(","):
        for label, ms in measure(kind, args.sessions).items():
            print(f"{kind:9s} {args.sessions:>8,} sessions  due_work via {label:12s} {ms:8.1f} ms")


if __name__ == "__main__":
    main()
