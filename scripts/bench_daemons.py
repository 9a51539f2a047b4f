"""A fleet of real `livedash run` processes on one PostgreSQL, side by side with 1, 2, 4.

    .venv/bin/python scripts/bench_daemons.py --scenario all --runs 3 --daemons 1,2,4

Scenarios (each figure the median of --runs, with min and max in the JSON):
- io: AI_ANALYSIS against the fake OpenAI server (1 s a request, 8 at once per daemon, no
  rate limit), sessions scaled with the fleet (--io-sessions per daemon): sessions/s end to
  end and in steady state (10 % → 90 % of completions), their ratio to N × one daemon's, and
  the start skew (until every daemon holds its fair share of the partitions).
- cpu: CSV → SESSION_CREATION (transcript fetch and parse), --sessions for every N: sessions/s,
  ratio to one daemon, and the CPU the daemons and PostgreSQL used (cores, from /proc).
- takeover: 3 daemons on AI_ANALYSIS, one SIGKILLed mid-run: until its partitions are held
  again, until the first claim in them, and whether every session completed exactly once.
Lost claim races are reported as a % of claims at every N (the daemons' `stopped` lines).

Each run gets a copy of a prepared database (CREATE DATABASE … TEMPLATE), so preparing the
backlog is paid once per scenario. Results go to bench-results.json under "daemon_fleet".
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib
import psycopg
from bench_pipeline import REPO, _import_company
from benchlib import TranscriptServer
from fleetwatch import (
    CpuSampler,
    PartitionWatch,
    StageEvent,
    count_completed,
    last_event_id,
    stage_events,
    stopped_summary,
)

from cli.runtime import Runtime
from domain.partitions import partition_of
from tests.openai_server import FakeOpenAI

AI = "AI_ANALYSIS"
CREATION = "SESSION_CREATION"
FETCH_AND_CREATE = "TRANSCRIPT_FETCH,SESSION_CREATION"


# ------------------------------------------------------------------------- databases
def _admin(sql: str) -> None:
    with psycopg.connect(benchlib.PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql)


def _url(name: str) -> str:
    return f"{benchlib.PG_ADMIN.rsplit('/', 1)[0]}/{name}"


@contextmanager
def prepared(prepare: Callable[[str], None]) -> Iterator[str]:
    """A database made ready by ``prepare(url)`` once, to be copied for every run."""
    name = f"livedash_fleet_tpl_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        prepare(_url(name))
        yield name
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def copy_of(template: str) -> Iterator[tuple[str, str]]:
    name = f"livedash_fleet_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield name, _url(name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- daemons
def _env(url: str, ai_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEDASH_", "OPENAI_"))}
    env.update(
        LIVEDASH_DATABASE_URL=url, LIVEDASH_FETCH_ALLOW_HOSTS="127.0.0.1", PYTHONPATH=str(REPO)
    )
    if ai_url:
        env.update(LIVEDASH_AI_PROVIDER="openai", OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=ai_url)
    return env


def _daemon(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "cli.main", "run", "--csv-interval", "0", *args]
    with open(log, "w", encoding="utf-8") as out:
        return subprocess.Popen(cmd, cwd=log.parent, env=env, stdout=subprocess.DEVNULL, stderr=out)


def _prepare(
    tmp: str, sessions: int, transcripts: str, through_creation: bool
) -> Callable[[str], None]:
    def prepare(url: str) -> None:
        with Runtime.open(url, create=True) as rt:
            _import_company(rt, tmp, sessions, transcripts)
        if through_creation:  # the AI stage's backlog: fetched and parsed sessions
            log = Path(tmp) / f"prepare-{uuid.uuid4().hex[:6]}.log"
            prep = _daemon(_env(url, None), log, "--until-idle", "--idle-horizon", "0",
                           "--stages", FETCH_AND_CREATE)  # fmt: skip
            if prep.wait(600) != 0:
                raise SystemExit(f"preparing the sessions failed: {log.read_text()[-2000:]}")

    return prepare


class Kill:
    """SIGKILL ``worker`` once ``after`` stage completions are stored and it holds partitions."""

    def __init__(self, worker: str, after: int) -> None:
        self.worker, self.after = worker, after
        self.at_wall: datetime | None = None
        self.completed_at_kill = 0


def fleet_run(
    name: str,
    url: str,
    daemons: int,
    env: dict[str, str],
    args: list[str],
    tmp: str,
    timeout: float,
    extra_pids: dict[str, list[int]],
    kill: Kill | None = None,
) -> dict[str, Any]:
    """Starts ``daemons`` processes together, waits for them all to go idle, and returns what
    happened: the stage events, the daemons' summaries, partitions and CPU."""
    base = last_event_id(url)
    workers = [f"bench-{i}" for i in range(daemons)]
    logs = [Path(tmp) / f"{w}-{uuid.uuid4().hex[:6]}.log" for w in workers]
    with PartitionWatch(url, workers) as watch:
        t0_wall, t0 = datetime.now(UTC), time.monotonic()
        watch.started = t0
        procs = {
            w: _daemon(env, log, *args, "--worker-id", w)
            for w, log in zip(workers, logs, strict=True)
        }
        pids = {"daemons": [p.pid for p in procs.values()], **extra_pids}
        with CpuSampler(url, name, pids) as cpu:
            while any(p.poll() is None for p in procs.values()):
                if kill and kill.at_wall is None and watch.held.get(kill.worker):
                    done = count_completed(url, base)
                    if done >= kill.after:
                        procs[kill.worker].send_signal(signal.SIGKILL)
                        kill.at_wall, kill.completed_at_kill = datetime.now(UTC), done
                        watch.victim_killed(kill.worker, time.monotonic())
                if time.monotonic() - t0 > timeout:
                    for p in procs.values():
                        p.kill()
                    raise SystemExit(f"the fleet did not finish in {timeout:.0f} s")
                time.sleep(0.05)
        wall = time.monotonic() - t0
    codes = {w: p.returncode for w, p in procs.items()}
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT worker_id, started_at FROM daemon_workers WHERE worker_id = ANY(%s)",
            (workers,),
        ).fetchall()
    joined = {w: round((at - t0_wall).total_seconds(), 2) for w, at in rows}
    return {
        "t0": t0_wall,
        "wall": wall,
        "codes": codes,
        "events": stage_events(url, base),
        "summaries": {w: stopped_summary(log) for w, log in zip(workers, logs, strict=True)},
        "fair_share_s": watch.fair_share_at,
        "joined_s": joined,
        "reowned_s": watch.reowned_at,
        "victim_partitions": watch.victim_partitions,
        "cpu": cpu.cores(),
        "logs": logs,
    }


# -------------------------------------------------------------------------- analysis
def throughput(events: list[StageEvent], stage: str, t0: datetime) -> dict[str, float]:
    """Sessions/s from the daemons' start to the last completion, and between the 10 % and
    the 90 % completion (start-up and the tail left out)."""
    times = sorted(e.at for e in events if e.kind == "completed" and e.stage == stage)
    n = len(times)
    lo, hi = times[int(0.1 * (n - 1))], times[int(0.9 * (n - 1))]
    steady = (int(0.9 * (n - 1)) - int(0.1 * (n - 1))) / max(1e-6, (hi - lo).total_seconds())
    return {
        "completed": n,
        "end_to_end_per_s": round(n / (times[-1] - t0).total_seconds(), 2),
        "steady_per_s": round(steady, 2),
    }


def races(run: dict[str, Any], stage: str) -> dict[str, Any]:
    """Lost races (claims another daemon stored first, and outcomes that turned stale) as a
    share of all claims tried (stored + lost)."""
    stored = Counter(e.worker for e in run["events"] if e.kind == "started" and e.stage == stage)
    lost = {w: (s or {}).get("lost_races", 0) for w, s in run["summaries"].items()}
    tried = sum(stored.values()) + sum(lost.values())
    return {
        "claims_stored": dict(stored),
        "lost_races": lost,
        "lost_race_pct": round(100 * sum(lost.values()) / max(1, tried), 2),
    }


def exactly_once(events: list[StageEvent], stage: str, sessions: int) -> dict[str, Any]:
    mine = [e for e in events if e.stage == stage]
    completed = Counter(e.session for e in mine if e.kind == "completed")
    starts = Counter((e.session, e.attempt) for e in mine if e.kind == "started")
    per_session = Counter(e.session for e in mine if e.kind == "started")
    return {
        "sessions_completed": len(completed),
        "sessions_missing": sessions - len(completed),
        "completed_twice": sum(1 for c in completed.values() if c > 1),
        "attempt_started_twice": sum(1 for c in starts.values() if c > 1),
        "sessions_started_more_than_once": sum(1 for c in per_session.values() if c > 1),
    }


def _check(run: dict[str, Any], what: str) -> None:
    bad = {w: c for w, c in run["codes"].items() if c not in (0, -signal.SIGKILL)}
    if bad:
        tails = "\n".join(log.read_text()[-1500:] for log in run["logs"])
        raise SystemExit(f"{what}: daemons exited with {bad}\n{tails}")


def _first_claims(run: dict[str, Any], stage: str) -> dict[str, float]:
    first: dict[str, datetime] = {}
    for e in run["events"]:
        if e.kind == "started" and e.stage == stage and e.worker:
            first.setdefault(e.worker, e.at)
    return {w: round((t - run["t0"]).total_seconds(), 2) for w, t in sorted(first.items())}


def _start(run: dict[str, Any], stage: str) -> dict[str, Any]:
    """Start skew: from starting the processes together until every daemon held its fair
    share of the partitions; split into the processes' own start-up (until the last one
    registered) and the rebalance after it."""
    fair = run["fair_share_s"]
    last_join = max(run["joined_s"].values(), default=0.0)
    return {
        "start_skew_s": round(fair, 2) if fair is not None else -1.0,
        "last_joined_s": last_join,
        "rebalance_after_last_join_s": round(fair - last_join, 2) if fair is not None else -1.0,
        "joined_s": run["joined_s"],
        "first_claim_s": _first_claims(run, stage),
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per numeric figure: median, min, max over the runs (nested dicts kept)."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        values = [r.get(key) for r in runs]
        if isinstance(value, dict):
            out[key] = median_of([v for v in values if isinstance(v, dict)])
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[key] = benchlib.stats([float(v) for v in values])  # type: ignore[arg-type]
        else:
            out[key] = values
    return out


def _med(figure: dict[str, Any]) -> float:
    return float(figure["median"])


# ------------------------------------------------------------------------- scenarios
def scenario_io(a: argparse.Namespace, tmp: str) -> dict[str, Any]:
    by_n: dict[str, Any] = {}
    with TranscriptServer() as transcripts, FakeOpenAI(latency=a.ai_latency) as ai:
        for n in a.daemons:
            sessions = a.io_sessions * n
            prepare = _prepare(tmp, sessions, transcripts.url, through_creation=True)
            with prepared(prepare) as template:
                runs = []
                for _ in range(a.runs):
                    with copy_of(template) as (name, url):
                        run = fleet_run(
                            name, url, n, _env(url, ai.base_url), _io_args(a), tmp, a.timeout,
                            {"bench_and_ai_server": [os.getpid()]},
                        )  # fmt: skip
                    _check(run, f"io, {n} daemon(s)")
                    figures = {
                        **throughput(run["events"], AI, run["t0"]),
                        **_start(run, AI),
                        "lost_race_pct": races(run, AI)["lost_race_pct"],
                        "cpu_cores": run["cpu"],
                        **exactly_once(run["events"], AI, sessions),
                    }
                    _note(f"io {n}", figures)
                    runs.append(figures)
            by_n[str(n)] = {"sessions": sessions, **median_of(runs)}
    return {
        "ai_latency_s": a.ai_latency,
        "concurrency_per_daemon": a.ai_concurrency,
        "sessions_per_daemon": a.io_sessions,
        "by_daemons": by_n,
        "ratio_to_n_times_one": _ratios(by_n, ("end_to_end_per_s", "steady_per_s"), per_n=True),
    }


def _io_args(a: argparse.Namespace) -> list[str]:
    return [
        "--until-idle", "--idle-horizon", "0", "--stages", AI,
        "--concurrency", f"{AI}={a.ai_concurrency}",
        "--heartbeat", str(a.heartbeat), "--claim-timeout", str(a.claim_timeout),
    ]  # fmt: skip


def scenario_cpu(a: argparse.Namespace, tmp: str) -> dict[str, Any]:
    by_n: dict[str, Any] = {}
    args = ["--until-idle", "--idle-horizon", "0", "--stages", FETCH_AND_CREATE,
            "--concurrency", a.concurrency,
            "--heartbeat", str(a.heartbeat), "--claim-timeout", str(a.claim_timeout)]  # fmt: skip
    with (
        TranscriptServer() as transcripts,
        prepared(_prepare(tmp, a.sessions, transcripts.url, through_creation=False)) as template,
    ):
        assert transcripts.proc is not None
        for n in a.daemons:
            runs = []
            for _ in range(a.runs):
                with copy_of(template) as (name, url):
                    run = fleet_run(name, url, n, _env(url, None), args, tmp, a.timeout,
                                    {"transcript_server": [transcripts.proc.pid]})  # fmt: skip
                _check(run, f"cpu, {n} daemon(s)")
                figures = {
                    **throughput(run["events"], CREATION, run["t0"]),
                    **_start(run, CREATION),
                    "lost_race_pct": races(run, CREATION)["lost_race_pct"],
                    "lost_race_pct_fetch": races(run, "TRANSCRIPT_FETCH")["lost_race_pct"],
                    "cpu_cores": run["cpu"],
                    **exactly_once(run["events"], CREATION, a.sessions),
                }
                _note(f"cpu {n}", figures)
                runs.append(figures)
            by_n[str(n)] = median_of(runs)
    return {
        "sessions": a.sessions,
        "concurrency_per_daemon": a.concurrency,
        "by_daemons": by_n,
        "ratio_to_one": _ratios(by_n, ("end_to_end_per_s", "steady_per_s"), per_n=False),
    }


def scenario_takeover(a: argparse.Namespace, tmp: str) -> dict[str, Any]:
    daemons, sessions = 3, a.takeover_sessions
    args = [*_io_args(a), "--lease", f"{AI}={a.takeover_lease}"]
    runs = []
    with (
        TranscriptServer() as transcripts,
        FakeOpenAI(latency=a.ai_latency) as ai,
        prepared(_prepare(tmp, sessions, transcripts.url, through_creation=True)) as template,
    ):
        for _ in range(a.runs):
            kill = Kill("bench-1", int(sessions * a.kill_at))
            with copy_of(template) as (name, url):
                run = fleet_run(name, url, daemons, _env(url, ai.base_url), args, tmp, a.timeout,
                                {"bench_and_ai_server": [os.getpid()]}, kill)  # fmt: skip
            _check(run, "takeover")
            if kill.at_wall is None:
                raise SystemExit("takeover: the run ended before the kill; use more sessions")
            figures = _takeover_figures(run, kill, sessions)
            _note("takeover", figures)
            runs.append(figures)
    return {
        "daemons": daemons,
        "sessions": sessions,
        "heartbeat_s": a.heartbeat,
        "claim_timeout_s": a.claim_timeout,
        "lease_s": a.takeover_lease,
        "killed_after_fraction": a.kill_at,
        **median_of(runs),
    }


def _takeover_figures(run: dict[str, Any], kill: Kill, sessions: int) -> dict[str, Any]:
    assert kill.at_wall is not None
    parts: frozenset[int] = run["victim_partitions"]
    events: list[StageEvent] = [e for e in run["events"] if e.stage == AI]
    after = [e for e in events if e.kind == "started" and e.at > kill.at_wall]
    in_parts = [e.at for e in after if partition_of(e.session) in parts]
    ended = {(e.session, e.attempt) for e in events if e.kind in ("completed", "released")}
    ended |= {
        (e.session, e.attempt)
        for e in events
        if e.kind == "failed" and e.error_type != "lease_expired"
    }
    unfinished = {
        (e.session, e.attempt)
        for e in events
        if e.kind == "started" and e.worker == kill.worker and (e.session, e.attempt) not in ended
    }
    # A claim handed back unstarted (StageReleased, partitions moving) is not a rerun: count
    # starts net of releases, so only work begun twice shows up.
    rerun = Counter(e.session for e in events if e.kind == "started")
    rerun.subtract(Counter(e.session for e in events if e.kind == "released"))
    rerun_sessions = {s for s, c in rerun.items() if c > 1}
    explained = {s for s, _ in unfinished}
    first_rerun = min(
        (e.at for e in after if (e.session, e.attempt - 1) in unfinished), default=None
    )
    once = exactly_once(run["events"], AI, sessions)
    return {
        "victim_partitions": len(parts),
        "completed_at_kill": kill.completed_at_kill,
        "reowned_s": run["reowned_s"] if run["reowned_s"] is not None else -1.0,
        "first_claim_in_its_partitions_s": round((min(in_parts) - kill.at_wall).total_seconds(), 3)
        if in_parts
        else -1.0,
        "first_rerun_of_its_attempts_s": round((first_rerun - kill.at_wall).total_seconds(), 3)
        if first_rerun
        else -1.0,
        "victim_unfinished_attempts": len(unfinished),
        "sessions_rerun": len(rerun_sessions),
        "claims_handed_back": sum(1 for e in events if e.kind == "released"),
        "reruns_not_explained_by_the_kill": len(rerun_sessions - explained),
        **{k: v for k, v in once.items() if k != "sessions_started_more_than_once"},
        "lost_race_pct": races(run, AI)["lost_race_pct"],
        "wall_s": round(run["wall"], 1),
    }


def _ratios(by_n: dict[str, Any], keys: tuple[str, ...], per_n: bool) -> dict[str, Any]:
    if "1" not in by_n:
        return {}
    out: dict[str, Any] = {}
    for n, figures in by_n.items():
        if n == "1":
            continue
        scale = int(n) if per_n else 1
        out[n] = {k: round(_med(figures[k]) / (scale * _med(by_n["1"][k])), 3) for k in keys}
    return out


def _note(what: str, figures: dict[str, Any]) -> None:
    short = {k: v for k, v in figures.items() if not isinstance(v, dict)}
    print(f"{what}: {json.dumps(short)}", flush=True)


# ------------------------------------------------------------------------------ main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenario", default="all", help="io, cpu, takeover or all (comma-separated)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--daemons", default="1,2,4", help="fleet sizes for io and cpu")
    p.add_argument("--sessions", type=int, default=20_000, help="cpu: sessions, all fleet sizes")
    p.add_argument("--io-sessions", type=int, default=160, help="io: sessions per daemon")
    p.add_argument("--takeover-sessions", type=int, default=720)
    p.add_argument("--ai-latency", type=float, default=1.0, help="seconds per model request")
    p.add_argument("--ai-concurrency", type=int, default=8, help="AI requests per daemon")
    p.add_argument("--concurrency", default="TRANSCRIPT_FETCH=32,SESSION_CREATION=4",
                   help="cpu: per daemon")  # fmt: skip
    p.add_argument("--heartbeat", type=float, default=2.0, help="`run --heartbeat`")
    p.add_argument("--claim-timeout", type=float, default=5.0, help="`run --claim-timeout`")
    p.add_argument("--takeover-lease", type=float, default=10.0, help="AI lease, seconds")
    p.add_argument("--kill-at", type=float, default=0.3, help="fraction completed at the kill")
    p.add_argument("--timeout", type=float, default=900.0, help="longest one run may take")
    p.add_argument("--postgres-url", default=benchlib.PG_ADMIN, help="server to create DBs on")
    p.add_argument("--out", type=Path, default=REPO / "bench-results.json")
    a = p.parse_args()
    benchlib.PG_ADMIN = a.postgres_url
    a.daemons = [int(n) for n in a.daemons.split(",") if n.strip()]
    chosen = ["io", "cpu", "takeover"] if a.scenario == "all" else a.scenario.split(",")
    scenarios = {"io": scenario_io, "cpu": scenario_cpu, "takeover": scenario_takeover}
    result: dict[str, Any] = {
        "machine": benchlib.machine(),
        "runs": a.runs,
        "command": " ".join(["scripts/bench_daemons.py", *sys.argv[1:]]),
    }
    with tempfile.TemporaryDirectory(prefix="bench-daemons-") as tmp:
        for name in chosen:
            t = time.perf_counter()
            result[name] = scenarios[name](a, tmp)
            result[name]["wall_seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps(result, indent=2, default=str))
    merged: dict[str, Any] = json.loads(a.out.read_text(encoding="utf-8")) if a.out.exists() else {}
    fleet = merged.get("daemon_fleet", {})
    fleet.update(result)  # a run of one scenario keeps the others' last figures
    merged["daemon_fleet"] = fleet
    a.out.write_text(json.dumps(merged, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
