"""The daemon's window on the read side: its own events projected from memory (one turn late
while no one else writes), anyone's events handed back as news in log order."""

from __future__ import annotations

import threading
from datetime import timedelta

from domain.company import Company
from domain.session import Session
from domain.stages import Stage
from processors.clock import utc_now
from projections.local_feed import LocalFeed
from projections.status import StatusProjection
from tests.factories import row
from tests.harness import assert_projected_is_fold, imported, runtime

STATUS = StatusProjection.name


def _start(sessions: list[Session]) -> None:
    now = utc_now()
    for s in sessions:
        s.start_stage(Stage.TRANSCRIPT_FETCH, "t", now + timedelta(seconds=60), now)


def test_own_events_wait_one_turn_and_foreign_ones_none(database_url: str) -> None:
    with runtime(database_url) as rt:
        company = rt.app.register_company(Company.register("Acme", "x.csv", utc_now()))
        ours = imported(rt, company.id, 4, "o", utc_now)
        feed = LocalFeed(rt.runner, defer_turns=1)
        feed.own_thread()

        feed.about_to_change(ours[:2])
        _start(ours[:2])
        feed.stored(rt.app.save_batch(ours[:2]).recordings)
        assert feed.unprojected
        feed.advance()
        assert rt.runner.position(STATUS) < rt.runner.head(), "only ours: it may wait a turn"
        feed.advance()
        assert rt.runner.position(STATUS) == rt.runner.head(), "but one turn only"
        assert not feed.unprojected

        _start(ours[2:])
        feed.stored(rt.app.save_batch(ours[2:]).recordings)
        foreign = Session.import_row(company.id, row(external_id="f"), "x.csv", utc_now())
        rt.app.save_batch([foreign])  # another writer, after our save
        feed.advance()
        assert rt.runner.position(STATUS) == rt.runner.head(), "a foreign event must not wait"

        assert_projected_is_fold(rt, company.id, [*ours, foreign])
        feed.close()
        assert not rt.runner.listeners


def test_news_comes_in_log_order_whoever_projected_it(database_url: str) -> None:
    with runtime(database_url) as rt, runtime(database_url, create=False) as other:
        company = rt.app.register_company(Company.register("Acme", "x.csv", utc_now()))
        feed = LocalFeed(rt.runner, defer_turns=0)
        feed.own_thread()
        first = imported(rt, company.id, 2, "a", utc_now)  # projected by our runner
        assert [e.originator_id for e in feed.take()] == [s.id for s in first]

        middle = imported(other, company.id, 3, "b", utc_now)  # another process projects
        last = [Session.import_row(company.id, row(external_id="c"), "x.csv", utc_now())]
        feed.stored(rt.app.save_batch(last).recordings)
        feed.advance()  # ours from memory is impossible (a gap): the runner reads the log

        news = feed.take()
        assert [e.originator_id for e in news] == [s.id for s in [*middle, *last]]
        assert all(isinstance(e, Session.Imported) for e in news)
        assert feed.take() == [], "each event is news once"
        feed.close()


def test_pages_applied_on_another_thread_wake_the_owner(database_url: str) -> None:
    with runtime(database_url) as rt:
        company = rt.app.register_company(Company.register("Acme", "x.csv", utc_now()))
        woken = threading.Event()
        feed = LocalFeed(rt.runner, on_news=woken.set)
        feed.own_thread()
        rt.app.save_batch(
            [Session.import_row(company.id, row(external_id="s"), "x.csv", utc_now())]
        )
        other = threading.Thread(target=rt.runner.catch_up)  # as a scheduled import does
        other.start()
        other.join(60)
        assert not other.is_alive(), "catch_up did not return"
        assert woken.is_set()
        assert feed.news_waiting
        assert len(feed.take()) == 1
        assert not feed.news_waiting
        assert feed.changed("companies"), "the companies page was seen too"
        assert not feed.changed("companies")
        feed.close()
