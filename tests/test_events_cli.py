"""`livedash events`: each filter narrows to exactly the events a plain Python filter of the
log keeps, in every output format, live with --follow, and refuses bad input clearly."""

from __future__ import annotations

import csv
import io
import json
import queue
import signal
import subprocess
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.errors import ExitCode
from domain.session import Session
from domain.stages import STAGE_ORDER, Stage
from processors.service.events import FIELDS, query_events
from projections.event_queries import EventQuery
from tests.conftest import LIVEDASH, REPO, Livedash
from tests.events_log import (
    ACTORS,
    COMPANIES,
    ERRORS,
    WORKERS,
    Expected,
    build_log,
    expected_records,
)
from tests.factories import Clock, row
from tests.harness import runtime

Filter = Callable[[Expected], bool]


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _without_summary(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "summary"} for r in records]


def test_each_filter_narrows_to_what_a_python_filter_keeps(livedash: Livedash) -> None:
    with runtime(livedash.database_url) as rt:
        build_log(rt)
        every = expected_records(rt)
    out = livedash("events", "--json", "--limit", "1000", "--oldest-first")
    got = _json_lines(out.stdout)
    assert list(got[0]) == list(FIELDS)  # stable names, in order
    assert _without_summary(got) == [e.fields() for e in every]
    assert all(isinstance(r["summary"], str) for r in got)

    jumbo_2 = next(e for e in every if e.external_id == "Jumbo-2")
    middle = every[len(every) // 2]
    cases: list[tuple[list[str], Filter]] = [
        (["--company", "Jumbo"], lambda e: e.company == "Jumbo"),
        (
            ["--session", "Jumbo-2", "--company", "jumbo"],
            lambda e: e.session_id == jumbo_2.session_id,
        ),
        (["--stage", "transcript-fetch"], lambda e: e.stage == "TRANSCRIPT_FETCH"),
        (
            ["--type", "StageFailed", "--type", "stagereset"],
            lambda e: e.type in ("StageFailed", "StageReset"),
        ),
        (["--actor", "bob"], lambda e: e.actor == "bob"),
        (["--worker", "w-1"], lambda e: e.worker == "w-1"),
        (["--error-type", "timeout"], lambda e: e.error_type == "timeout"),
        (
            ["--since", every[5].time.isoformat(), "--until", middle.time.isoformat()],
            lambda e: every[5].time <= e.time < middle.time,
        ),
        (
            ["--since", f"@{every[3].position}", "--until", f"@{middle.position}"],
            lambda e: every[3].position <= e.position < middle.position,
        ),
        (
            ["--company", "Albert", "--type", "StageFailed", "--error-type", "http_404"],
            lambda e: e.company == "Albert" and e.error_type == "http_404",
        ),
    ]
    for args, keep in cases:
        result = livedash("events", "--json", "--limit", "1000", *args)
        wanted = [e.fields() for e in reversed(every) if keep(e)]  # newest first
        assert wanted, args  # a filter that keeps nothing would prove little
        assert len(wanted) < len(every), args
        assert _without_summary(_json_lines(result.stdout)) == wanted, args

    newest = _json_lines(livedash("events", "--json", "--limit", "3").stdout)
    assert [r["position"] for r in newest] == [e.position for e in every[::-1][:3]]

    table = livedash("events", "--csv", "--limit", "1000", "--oldest-first").stdout
    rows = list(csv.DictReader(io.StringIO(table)))
    assert [int(r["position"]) for r in rows] == [e.position for e in every]
    assert list(rows[0]) == list(FIELDS)
    assert rows[-1]["summary"] == got[-1]["summary"]

    human = livedash("events", "--company", "Jumbo", "--type", "StageReset").stdout
    assert "StageReset" in human and "Jumbo-0" in human and "(by alice)" in human


def test_bad_input_is_refused_with_a_hint(livedash: Livedash) -> None:
    with runtime(livedash.database_url) as rt:
        build_log(rt, sessions_per_company=1)
    for args, code, words in [
        (["--type", "StageBlown"], ExitCode.USAGE, "unknown event type"),
        (["--since", "last tuesday"], ExitCode.USAGE, "cannot read --since"),
        (["--until", "@-3"], ExitCode.USAGE, "cannot read --until"),
        (["--stage", "DANCING"], ExitCode.USAGE, "unknown stage"),
        (["--company", "Nobody"], ExitCode.FAILED, "unknown company"),
        (["--session", "nope"], ExitCode.FAILED, "unknown session"),
        (["--json", "--csv"], ExitCode.USAGE, "choose one"),
    ]:
        result = livedash("events", *args, check=False)
        assert result.code == code, (args, result)
        assert words in result.stderr and "Traceback" not in result.stderr, (args, result)
        if code == ExitCode.USAGE and "choose" not in words:
            assert "hint:" in result.stderr, (args, result)


def test_follow_prints_a_new_matching_event(livedash: Livedash) -> None:
    url = livedash.database_url
    with runtime(url) as rt:
        build_log(rt, sessions_per_company=3)
        company = rt.app.get_company("Albert").id
        env = {**livedash.env, "LIVEDASH_DATABASE_URL": url}
        poll = "60" if url.startswith("postgresql") else "0.2"  # PostgreSQL: NOTIFY wakes it
        args = ["--follow", "--json", "--company", "Albert", "--type", "Imported"]
        args += ["--limit", "2", "--poll-interval", poll]
        proc = subprocess.Popen(
            [*LIVEDASH, "events", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            lines = _line_reader(proc)
            first = [_read_line(lines, 60) for _ in range(2)]  # the last two matches
            assert [r["external_id"] for r in first] == ["Albert-1", "Albert-2"]
            clock = Clock()
            other = Session.import_row(
                rt.app.get_company("Jumbo").id, row(external_id="skip-me"), "t.csv", clock()
            )
            new = Session.import_row(company, row(external_id="new-one"), "t.csv", clock())
            new.start_stage(Stage.TRANSCRIPT_FETCH, "w", clock() + timedelta(hours=1), clock())
            rt.app.save_batch([other, new])
            seen = _read_line(lines, 30)
            assert seen["external_id"] == "new-one" and seen["type"] == "Imported"
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err


def _line_reader(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The follower's lines as they come (a thread: a buffered pipe defeats select)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _read_line(lines: queue.Queue[str], seconds: float) -> dict[str, Any]:
    try:
        line = lines.get(timeout=seconds)
    except queue.Empty:
        raise AssertionError(f"nothing printed within {seconds}s") from None
    result: dict[str, Any] = json.loads(line)
    return result


def test_any_combination_of_filters_is_the_python_filter(database_url: str) -> None:
    """In process (no CLI): random combinations of every filter, on both databases."""
    with runtime(database_url) as rt:
        build_log(rt, sessions_per_company=4)
        rt.runner.catch_up()
        every = expected_records(rt)
        ids = {c: rt.app.get_company(c).id for c in COMPANIES}
        sessions = sorted({e.session_id for e in every if e.session_id}, key=str)
        positions = [e.position for e in every]
        times = sorted({e.time for e in every})
        types = sorted({e.type for e in every})

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            company=st.none() | st.sampled_from(COMPANIES),
            session=st.none() | st.sampled_from(sessions),
            stages=st.lists(st.sampled_from([s.value for s in STAGE_ORDER]), max_size=2),
            kinds=st.lists(st.sampled_from(types), max_size=3),
            actor=st.none() | st.sampled_from(ACTORS),
            worker=st.none() | st.sampled_from(WORKERS),
            error=st.none() | st.sampled_from(ERRORS),
            since=st.none() | st.sampled_from(times),
            until=st.none() | st.sampled_from(times),
            since_at=st.none() | st.sampled_from(positions),
            limit=st.integers(1, 200),
            oldest=st.booleans(),
        )
        def check(**a: Any) -> None:
            q = EventQuery(
                session_id=a["session"],
                company_id=ids[a["company"]] if a["company"] else None,
                stages=tuple(a["stages"]),
                types=tuple(a["kinds"]),
                actor=a["actor"],
                worker=a["worker"],
                error_type=a["error"],
                since_time=a["since"],
                until_time=a["until"],
                since_position=a["since_at"],
                limit=a["limit"],
                oldest_first=a["oldest"],
            )
            kept = [
                e.fields()
                for e in every
                if (not a["company"] or e.company == a["company"])
                and (a["session"] is None or e.session_id == a["session"])
                and (not a["stages"] or e.stage in a["stages"])
                and (not a["kinds"] or e.type in a["kinds"])
                and (a["actor"] is None or e.actor == a["actor"])
                and (a["worker"] is None or e.worker == a["worker"])
                and (a["error"] is None or e.error_type == a["error"])
                and (a["since"] is None or e.time >= a["since"])
                and (a["until"] is None or e.time < a["until"])
                and (a["since_at"] is None or e.position >= a["since_at"])
            ]
            wanted = (kept if a["oldest"] else kept[::-1])[: a["limit"]]
            got = [
                {k: v for k, v in r.flat().items() if k != "summary"}
                for r in query_events(rt.app, rt.engine, q)
            ]
            assert got == wanted

        check()


def test_an_existing_database_fills_the_index_from_the_log(tmp_path: Any) -> None:
    """A database made before the index: `init` adds the table and the next catch-up indexes
    the whole log, statuses included."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with runtime(url) as rt:
        build_log(rt, sessions_per_company=2)
        rt.runner.catch_up()
        every = expected_records(rt)
        with rt.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE event_index")
            conn.exec_driver_sql("DELETE FROM projection_tracking WHERE name = 'event_index'")
    with runtime(url) as rt:  # create=True: what `livedash init` does
        rt.runner.catch_up()
        got = query_events(rt.app, rt.engine, EventQuery(limit=10_000, oldest_first=True))
        assert [{k: v for k, v in r.flat().items() if k != "summary"} for r in got] == [
            e.fields() for e in every
        ]


def test_a_cold_cache_gives_the_same_statuses_and_workers(tmp_path: Any) -> None:
    """The projection remembers sessions between pages; one that forgot them (a new process,
    an evicted session) reads them back from the index and writes the same rows."""
    url = f"sqlite:///{tmp_path / 'cold.db'}"
    with runtime(url) as rt:
        build_log(rt, sessions_per_company=4)
        every = expected_records(rt)
        index = rt.runner.projections["event_index"]
        index.cache_size = 0  # type: ignore[attr-defined]
        rt.runner.page_size = 3  # sessions span pages, and the cache holds nothing
        rt.runner.catch_up()
        got = query_events(rt.app, rt.engine, EventQuery(limit=10_000, oldest_first=True))
        assert [{k: v for k, v in r.flat().items() if k != "summary"} for r in got] == [
            e.fields() for e in every
        ]
