"""`projections follow`: NOTIFY wakes it on PostgreSQL long before its poll; SQLite polls."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path
from uuid import uuid4

import pytest

from domain.session import Session
from tests.conftest import LIVEDASH, REPO, fresh_pg_database
from tests.factories import Clock, row
from tests.harness import projected_rows, runtime


def _follow(url: str, poll: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LIVEDASH_DATABASE_URL": url, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [*LIVEDASH, "projections", "follow", "--poll-interval", poll],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _appears_within(url: str, poll: str, limit: float) -> float:
    with runtime(url) as rt:
        proc = _follow(url, poll)
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, "the follower said nothing within 60 s"
            proc.stdout.readline()  # "following ..." once it is listening
            time.sleep(0.5)
            s = Session.import_row(uuid4(), row(), "t.csv", Clock()())
            rt.app.save(s)  # written here; only the follower projects it
            t0 = time.monotonic()
            while time.monotonic() - t0 < limit:
                if projected_rows(rt, [s.id]):
                    return time.monotonic() - t0
                time.sleep(0.05)
            raise AssertionError(f"not projected within {limit}s")
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
            assert proc.returncode == 0, err.decode()


@pytest.mark.postgres
def test_notify_wakes_the_follower_before_its_poll() -> None:
    with fresh_pg_database() as url:
        assert _appears_within(url, "60", 10.0) < 10.0


def test_sqlite_follower_polls(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    assert _appears_within(url, "0.3", 10.0) < 10.0
