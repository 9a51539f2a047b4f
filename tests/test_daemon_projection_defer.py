"""While only the daemon itself writes, the status projection may take its events one turn
late (one page for two turns); another writer's events are never kept waiting, and the
daemon neither reports itself idle nor exits with events the projection has not seen."""

from __future__ import annotations

import io
import threading
from datetime import timedelta

from cli.bootstrap import build_processors
from cli.runtime import Runtime
from cli.settings import Settings
from domain.company import Company
from domain.session import Session
from domain.stages import Stage
from processors.clock import utc_now
from processors.runtime.daemon import Daemon, DaemonConfig
from processors.runtime.reporting import JsonLogReporter
from tests.factories import row
from tests.harness import assert_projected_is_fold, imported, runtime

STATUS = "session_status"


def _daemon(rt: Runtime, url: str) -> Daemon:
    config = DaemonConfig(worker_id="t", stages=(Stage.TRANSCRIPT_FETCH,), projection_defer=1)
    settings = Settings(database_url=url)
    daemon = Daemon(
        rt.app,
        rt.runner,
        build_processors(settings, {}.get),
        config,
        utc_now,
        JsonLogReporter(io.StringIO()),
    )
    daemon._loop_thread = threading.get_ident()  # as run() does, without the loop
    return daemon


def _start(daemon: Daemon, sessions: list[Session]) -> None:
    now = utc_now()
    for s in sessions:
        s.start_stage(Stage.TRANSCRIPT_FETCH, "t", now + timedelta(seconds=60), now)
    assert daemon._save(sessions) == {s.id for s in sessions}


def test_own_events_wait_one_turn_and_foreign_ones_none(database_url: str) -> None:
    with runtime(database_url) as rt:
        company = rt.app.register_company(Company.register("Acme", "x.csv", utc_now()))
        ours = imported(rt, company.id, 4, "o", utc_now)
        daemon = _daemon(rt, database_url)

        _start(daemon, ours[:2])
        assert daemon._defer_projection(), "only our own events: the projection may wait"
        assert rt.runner.position(STATUS) < rt.runner.head()
        assert not daemon._defer_projection(), "but for one turn only"
        daemon._project()
        assert rt.runner.position(STATUS) == rt.runner.head()

        _start(daemon, ours[2:])
        foreign = Session.import_row(company.id, row(external_id="f"), "x.csv", utc_now())
        rt.app.save_batch([foreign])  # another writer, after our save
        assert not daemon._defer_projection(), "another writer's session must not wait"
        daemon._project()
        assert rt.runner.position(STATUS) == rt.runner.head()

        assert_projected_is_fold(rt, company.id, [*ours, foreign])


def test_not_idle_until_the_projection_has_our_events(database_url: str) -> None:
    with runtime(database_url) as rt:
        company = rt.app.register_company(Company.register("Acme", "x.csv", utc_now()))
        ours = imported(rt, company.id, 3, "o", utc_now)
        daemon = _daemon(rt, database_url)
        daemon._refresh_companies()
        _start(daemon, ours)
        assert daemon._defer_projection()

        daemon._idle()  # whatever it answers, it must have brought the projection up to date
        assert rt.runner.position(STATUS) == rt.runner.head()
        assert_projected_is_fold(rt, company.id, ours)
