"""The daemon neither reports itself idle nor exits with events the status projection has
not seen (its local feed may hold them back a turn: tests/test_local_feed.py)."""

from __future__ import annotations

import io
from datetime import timedelta

from cli.bootstrap import build_processors
from cli.settings import Settings
from domain.company import Company
from domain.stages import Stage
from processors.clock import utc_now
from processors.runtime.config import DaemonConfig
from processors.runtime.daemon import Daemon
from processors.runtime.reporting import JsonLogReporter
from tests.harness import assert_projected_is_fold, imported, runtime

STATUS = "session_status"


def test_not_idle_until_the_projection_has_our_events(database_url: str) -> None:
    with runtime(database_url) as rt:
        company = rt.app.register_company(Company.register("Acme", "x.csv", utc_now()))
        ours = imported(rt, company.id, 3, "o", utc_now)
        config = DaemonConfig(worker_id="t", stages=(Stage.TRANSCRIPT_FETCH,), projection_defer=1)
        daemon = Daemon(
            rt.app,
            rt.runner,
            build_processors(Settings(database_url=database_url), {}.get),
            config,
            utc_now,
            JsonLogReporter(io.StringIO()),
        )
        daemon.feed.own_thread()
        now = utc_now()
        for s in ours:
            s.start_stage(Stage.TRANSCRIPT_FETCH, "t", now + timedelta(seconds=60), now)
        assert daemon.writes.save_now(ours) == {s.id for s in ours}
        daemon.feed.advance()
        assert rt.runner.position(STATUS) < rt.runner.head(), "held back a turn"

        daemon.idle()  # whatever it answers, it must have brought the projection up to date
        assert rt.runner.position(STATUS) == rt.runner.head()
        assert_projected_is_fold(rt, company.id, ours)
        daemon.feed.close()
