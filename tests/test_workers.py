"""The daemons' register (`livedash workers`) and one daemon per SQLite file."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest

from domain.partitions import PARTITIONS
from processors.clock import utc_now
from projections.partitions import PartitionKeeper
from projections.queries import status_report
from projections.workers import Presence, database_now, workers
from store.run_lock import AnotherDaemon, single_daemon
from tests.conftest import LIVEDASH, Livedash
from tests.harness import runtime


def test_a_daemon_is_live_while_it_beats_then_stopped_or_dead(database_url: str) -> None:
    with runtime(database_url) as rt:
        presence = Presence(rt.engine, "w1", "host-a", 123, utc_now, interval=0)
        presence.join()
        assert presence.beat({"AI_ANALYSIS": 3}, completed=0)
        assert presence.beat({"AI_ANALYSIS": 2}, completed=7, partitions=5)
        with rt.engine.connect() as conn:
            now = database_now(conn, utc_now)
            (w,) = workers(conn, now)
        assert (w.worker_id, w.host, w.pid, w.live) == ("w1", "host-a", 123, True)
        assert w.in_flight == {"AI_ANALYSIS": 2}
        assert (w.completed_last_minute, w.partitions) == (7, 5)

        with rt.engine.connect() as conn:  # no heartbeat for longer than the claim timeout
            (w,) = workers(conn, now + timedelta(seconds=11))
        assert not w.live and w.stopped_at is None

        other = Presence(rt.engine, "w2", "host-b", 9, utc_now, interval=0)
        other.join()
        other.leave("signal")
        with rt.engine.connect() as conn:
            found = {x.worker_id: x for x in workers(conn, database_now(conn, utc_now))}
        assert found["w1"].live
        assert not found["w2"].live and found["w2"].stop_reason == "signal"
        assert list(found) == ["w1", "w2"], "live daemons come first"
        with rt.engine.connect() as conn:  # two hours later neither is shown
            assert workers(conn, now + timedelta(hours=2)) == []


def test_beats_are_throttled_to_the_interval(sqlite_url: str) -> None:
    with runtime(sqlite_url) as rt:
        presence = Presence(rt.engine, "w", "h", 1, utc_now, interval=3600)
        presence.join()
        assert not presence.beat({}, completed=5), "a beat within the interval writes nothing"


def test_a_second_daemon_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "livedash.db"
    with (
        single_daemon(db),
        pytest.raises(AnotherDaemon, match="SQLite runs one daemon"),
        single_daemon(db),
    ):
        pass
    with single_daemon(db):  # released with its holder
        pass


def test_livedash_workers_and_the_sqlite_refusal_through_the_real_command(
    livedash: Livedash, sqlite_url: str, tmp_path: Path
) -> None:
    livedash.database_url = sqlite_url
    livedash("init")
    first = subprocess.Popen(
        [*LIVEDASH, "run", "--worker-id", "first", "--poll-interval", "0.2"],
        cwd=livedash.cwd,
        env={**livedash.env, "LIVEDASH_DATABASE_URL": sqlite_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            listed = json.loads(livedash("workers", "--json").stdout)["workers"]
            if any(w["worker_id"] == "first" and w["live"] for w in listed):
                break
            assert first.poll() is None, "the first daemon exited"
            assert time.monotonic() < deadline, "the first daemon never showed up as live"
            time.sleep(0.1)
        second = livedash("run", "--until-idle", check=False)
        assert second.code != 0
        assert "SQLite runs one daemon" in second.stderr
        assert "PostgreSQL" in second.stderr
    finally:
        first.terminate()
        first.wait(60)
    listed = json.loads(livedash("workers", "--json").stdout)["workers"]
    (w,) = [w for w in listed if w["worker_id"] == "first"]
    assert not w["live"] and w["stop_reason"] == "signal"


def test_status_says_how_many_daemons_are_live_and_what_is_unowned(database_url: str) -> None:
    with runtime(database_url) as rt:
        with rt.engine.connect() as conn:
            before = status_report(conn).fleet
        assert before is not None and before.live_daemons == 0
        postgres = rt.engine.dialect.name == "postgresql"
        assert before.partitions_unowned == (PARTITIONS if postgres else None)
        Presence(rt.engine, "w", "h", 1, utc_now, 0).join()
        if postgres:
            PartitionKeeper(rt.engine, "w").keep({})
        with rt.engine.connect() as conn:
            after = status_report(conn).fleet
        assert after is not None and after.live_daemons == 1
        assert after.partitions_unowned == (0 if postgres else None)
