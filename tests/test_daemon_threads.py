"""A runner is shared: a scheduled import catches up on its own thread and so calls the
daemon's local feed there. The daemon's queues must still only change on its loop."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from cli.bootstrap import build_processors
from cli.settings import Settings
from domain.company import Company
from domain.session import Session
from domain.stages import Stage
from processors.clock import utc_now
from processors.runtime.config import DaemonConfig
from processors.runtime.daemon import Daemon
from processors.runtime.reporting import JsonLogReporter
from tests.factories import row
from tests.harness import runtime


def test_pages_applied_on_another_thread_reach_the_queues_through_the_loop(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'livedash.db'}"
    with runtime(url) as rt:
        company = rt.app.register_company(Company.register("Acme", "x.csv", utc_now()))
        settings = Settings(database_url=url)
        config = DaemonConfig(worker_id="t", stages=(Stage.TRANSCRIPT_FETCH,))
        daemon = Daemon(
            rt.app,
            rt.runner,
            build_processors(settings, {}.get),
            config,
            utc_now,
            JsonLogReporter(io.StringIO()),
        )
        daemon.feed.own_thread()  # as run() does, without the loop
        daemon.wake.clear()
        sessions = [
            Session.import_row(company.id, row(external_id=f"s{i}"), "x.csv", utc_now())
            for i in range(5)
        ]
        rt.app.save_batch(sessions)

        importer = threading.Thread(target=rt.runner.catch_up)  # as a scheduled import does
        importer.start()
        importer.join(60)
        assert not importer.is_alive(), "catch_up did not return"

        assert not daemon.candidates, "another thread changed the loop's queue"
        assert daemon.wake.is_set(), "the loop was not woken for the new pages"
        assert not daemon.idle(), "pages waiting for the loop, yet idle"
        daemon.follow_log()
        assert set(daemon.candidates.queued(Stage.TRANSCRIPT_FETCH)) == {s.id for s in sessions}
        daemon.feed.close()
