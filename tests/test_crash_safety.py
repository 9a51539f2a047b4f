"""A projection process killed with SIGKILL between (or inside) pages and restarted neither
loses nor double-counts anything: each page and its position commit together."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import delete

from domain.session import Session
from domain.stages import Stage
from projections.schema import (
    pipeline_overview,
    projection_tracking,
    session_stage_status,
    sessions,
)
from tests.conftest import LIVEDASH, REPO, fresh_pg_database
from tests.factories import Clock, row
from tests.harness import folded_overview, folded_rows, overview_counts, projected_rows, runtime


def _populate(url: str, n: int) -> tuple[object, list[Session]]:
    company = uuid4()
    clock = Clock()
    with runtime(url) as rt:
        batch = [
            Session.import_row(company, row(external_id=f"c{i}"), "t.csv", clock())
            for i in range(n)
        ]
        for i, s in enumerate(batch):
            clock.advance(0.001)
            s.start_stage(Stage.TRANSCRIPT_FETCH, "w", clock.now.replace(year=2030), clock())
            if i % 3:
                s.complete_stage(Stage.TRANSCRIPT_FETCH, 1, clock(), {"i": i})
            else:
                s.fail_stage(Stage.TRANSCRIPT_FETCH, 1, "http_500", "x", True, clock(), clock())
        for i in range(0, n, 500):
            rt.app.save_batch(batch[i : i + 500])
        # Start from an empty projection: the catch-up below is what gets killed.
        with rt.engine.begin() as conn:
            for table in (session_stage_status, pipeline_overview, sessions, projection_tracking):
                conn.execute(delete(table))
    return company, batch


def _catch_up_process(url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LIVEDASH_DATABASE_URL": url, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [*LIVEDASH, "projections", "catch-up", "session_status", "--page-size", "15"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _position(url: str) -> tuple[int, int]:
    with runtime(url, create=False) as rt:
        return rt.runner.position("session_status"), rt.runner.head()


def _kill_and_restart(url: str, kills: int, rng: random.Random) -> list[tuple[int, int]]:
    """Kills catch-up processes once they have moved the position on (plus a random moment),
    so each kill lands inside a catch-up however fast it runs; returns (position, head)."""
    seen = []
    for _ in range(kills):
        before, _head = _position(url)
        proc = _catch_up_process(url)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if _position(url)[0] > before:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            seen.append(_position(url))
        proc.wait(timeout=60)
    final = _catch_up_process(url)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    return seen


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkill_during_catch_up_loses_and_duplicates_nothing(backend: str, tmp_path: Path) -> None:
    rng = random.Random(7)

    def check(url: str) -> None:
        company, batch = _populate(url, 2000)
        positions = _kill_and_restart(url, 4, rng)
        assert any(0 < pos < head for pos, head in positions), (
            f"no kill landed in the middle of a catch-up: {positions}"
        )
        with runtime(url, create=False) as rt:
            ids = [s.id for s in batch]
            sessions_now = rt.app.get_sessions(ids)
            assert projected_rows(rt, ids) == folded_rows(sessions_now)
            assert overview_counts(rt, company) == folded_overview(sessions_now)  # type: ignore[arg-type]
            lag = {x.name: x for x in rt.runner.lag()}["session_status"]
            assert lag.events_behind == 0

    if backend == "sqlite":
        check(f"sqlite:///{tmp_path / 'crash.db'}")
    else:
        with fresh_pg_database() as url:
            check(url)
