"""`stage_statuses`: the status projection's stage -> status of each stored session, in bulk
(the legacy migration asks it which sessions of a batch an earlier run stored)."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

from domain.session import session_id_for
from domain.stages import STAGE_ORDER, Stage
from projections.queries import stage_statuses
from tests.factories import Clock
from tests.harness import imported, runtime


def test_stage_statuses_are_the_fold_of_the_stored_sessions(database_url: str) -> None:
    clock = Clock()
    with runtime(database_url) as rt:
        company = uuid4()
        # More than one chunk of 900 ids, so the query is asked in pieces.
        sessions = imported(rt, company, 950, "s", clock)
        first, last = sessions[0], sessions[-1]
        now = clock.advance(1)
        attempt = first.start_stage(Stage.TRANSCRIPT_FETCH, "w", now + timedelta(seconds=60), now)
        first.complete_stage(Stage.TRANSCRIPT_FETCH, attempt, now, {})
        attempt = last.start_stage(Stage.TRANSCRIPT_FETCH, "w", now + timedelta(seconds=60), now)
        last.fail_stage(Stage.TRANSCRIPT_FETCH, attempt, "http_404", "gone", False, None, now)
        rt.app.save_batch([first, last])
        rt.runner.catch_up()

        unknown = [session_id_for(company, "never-imported"), uuid4()]
        ids = [s.id for s in sessions] + unknown
        with rt.engine.connect() as conn:
            found = stage_statuses(conn, ids)
            assert found == {
                s.id: {st.value: s.stages[st].status.value for st in STAGE_ORDER} for s in sessions
            }
            assert found[first.id][Stage.TRANSCRIPT_FETCH.value] == "COMPLETED"
            assert found[first.id][Stage.SESSION_CREATION.value] == "PENDING"
            assert found[last.id][Stage.TRANSCRIPT_FETCH.value] == "FAILED"
            assert not set(unknown) & set(found)
            assert stage_statuses(conn, unknown) == {}
            assert stage_statuses(conn, []) == {}
