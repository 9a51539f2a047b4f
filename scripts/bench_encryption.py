"""What sealing personal data costs (store/sealing.py, store/data_keys.py).

    .venv/bin/python scripts/bench_encryption.py                       # 1,000 sessions, 3 runs
    .venv/bin/python scripts/bench_encryption.py --sessions 300 --runs 1 --kinds sqlite

Per database, each figure sealed and plain (no master key), runs alternating so a busy
minute hits both alike; ``ratio`` is the sealed median over the plain:
- pipeline: CSV → SESSION_CREATION through the real daemon (HTTP transcript fetch, parse):
  sessions per second from the first fetch to the last parse;
- write: a whole-pipeline log (every stage, every data event) stored in batches of 500:
  events per second, key creation included;
- read: the same log decoded page by page as a projection reads it (keys read per page):
  events per second;
- the mapper alone: microseconds per event to decode (keys read per page included) and to
  encode and decode again (keys already at hand): the CPU that sealing adds, without the
  database's noise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib
from bench_pipeline import _daemon, _import_company, _timeline
from benchlib import TranscriptServer, database, full_pipeline_log, stats

from cli.runtime import Runtime
from store.sealing import decode_all

PAGE = 500


def _key(sealed: bool) -> bytes | None:
    return os.urandom(32) if sealed else None


def pipeline_rate(kind: str, n: int, tmp: str, sealed: bool) -> float:
    with (
        TranscriptServer() as server,
        database(kind, tmp) as url,
        Runtime.open(url, create=True, master_key=_key(sealed)) as rt,
    ):
        _import_company(rt, tmp, n, server.url)
        with _daemon(rt, url, kind, until_idle=True) as daemon:
            daemon.run()
        timeline = _timeline(rt)
        assert len(timeline) == n and all("SESSION_CREATION.completed" in m for m in timeline)
        first = min(m["TRANSCRIPT_FETCH.started"] for m in timeline)
        last = max(m["SESSION_CREATION.completed"] for m in timeline)
        return n / (last - first).total_seconds()


def write_read_rates(kind: str, n: int, tmp: str, sealed: bool) -> dict[str, float]:
    """Events per second stored and read back (database included), and the mapper's own
    microseconds per event to encode and decode (no database: keys fetched beforehand)."""
    with (
        database(kind, tmp) as url,
        Runtime.open(url, create=True, master_key=_key(sealed)) as rt,
    ):
        started = time.perf_counter()
        events = full_pipeline_log(rt, uuid.uuid4(), n)
        write = events / (time.perf_counter() - started)
        recorder, mapper = rt.app.recorder, rt.app.mapper
        started = time.perf_counter()
        decoding = 0.0
        decoded: list[Any] = []
        position = 0
        while True:
            page = recorder.select_notifications(
                start=position, limit=PAGE, inclusive_of_start=False
            )
            if not page:
                break
            t = time.perf_counter()
            decoded.extend(decode_all(mapper, page))
            decoding += time.perf_counter() - t
            position = page[-1].id
        read = len(decoded) / (time.perf_counter() - started)
        assert len(decoded) == events
        with rt.app.reading(e.originator_id for e in decoded):
            t = time.perf_counter()
            for e in decoded:
                mapper.to_domain_event(mapper.to_stored_event(e))
            round_trip = time.perf_counter() - t
        return {
            "write_events_per_s": write,
            "read_events_per_s": read,
            "decode_us_per_event": decoding / events * 1e6,
            "encode_decode_us_per_event": round_trip / events * 1e6,
        }


def _kept(r: dict[bool, list[float]]) -> float:
    """Sealed median over plain median."""
    return round(stats(r[True])["median"] / stats(r[False])["median"], 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=1000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--kinds", default="sqlite,postgres")
    p.add_argument("--postgres-url", default=benchlib.PG_ADMIN, help="server to create DBs on")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = p.parse_args()
    benchlib.PG_ADMIN = args.postgres_url
    result: dict[str, Any] = {"machine": benchlib.machine(), "sessions": args.sessions}
    with tempfile.TemporaryDirectory(prefix="bench-seal-") as tmp:
        for kind in args.kinds.split(","):
            names = (
                "pipeline_sessions_per_s",
                "write_events_per_s",
                "read_events_per_s",
                "decode_us_per_event",
                "encode_decode_us_per_event",
            )
            rates: dict[str, dict[bool, list[float]]] = {k: {True: [], False: []} for k in names}
            for _ in range(args.runs):
                for sealed in (False, True):
                    rates[names[0]][sealed].append(pipeline_rate(kind, args.sessions, tmp, sealed))
                    for name, value in write_read_rates(kind, args.sessions, tmp, sealed).items():
                        rates[name][sealed].append(value)
            result[kind] = {
                name: {"plain": stats(r[False]), "sealed": stats(r[True]), "ratio": _kept(r)}
                for name, r in rates.items()
            }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
