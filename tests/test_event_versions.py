"""Events change shape by class version and upcast (docs/audit.md, "Changing an event"):
an event stored in an older shape still loads, everywhere the log is read."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from domain.session import Session
from domain.stages import Stage, Status
from processors.clock import utc_now
from tests.harness import imported, runtime


def _as_version_1(app: Any, event: Session.StageReset) -> Any:
    """The stored form a StageReset had before version 2: no class_version, no reset_from."""
    stored = app.mapper.to_stored_event(event)
    state = app.mapper.transcoder.decode(stored.state)
    assert state.pop("class_version") == 2 and "reset_from" in state
    del state["reset_from"]
    return type(stored)(
        originator_id=stored.originator_id,
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=app.mapper.transcoder.encode(state),
    )


def _resets(app: Any, session_id: UUID) -> list[Session.StageReset]:
    return [e for e in app.session_events(session_id) if isinstance(e, Session.StageReset)]


def test_a_stage_reset_stored_in_version_1_still_loads(database_url: str) -> None:
    now = utc_now()
    with runtime(database_url) as rt:
        old, new = imported(rt, uuid4(), 2, "v", utc_now)
        for s in (old, new):
            a = s.start_stage(Stage.TRANSCRIPT_FETCH, "w", now + timedelta(seconds=60), now)
            s.fail_stage(Stage.TRANSCRIPT_FETCH, a, "http_404", "gone", False, None, now)
        rt.app.save_batch([old, new])
        old.reset_stage(Stage.TRANSCRIPT_FETCH, "retry", "alice", now)
        new.reset_stage(Stage.TRANSCRIPT_FETCH, "retry", "alice", now)
        (reset,) = old.collect_events()
        rt.app.recorder.insert_events([_as_version_1(rt.app, reset)])
        rt.app.save_batch([new])

        stored = rt.app.recorder.select_events(old.id, gt=reset.originator_version - 1)
        assert "class_version" not in rt.app.mapper.transcoder.decode(stored[0].state)

        loaded_old = rt.app.get_sessions([old.id])[0]
        assert loaded_old.stages[Stage.TRANSCRIPT_FETCH].status is Status.PENDING
        (old_reset,) = [
            e for e in rt.app.session_events(old.id) if isinstance(e, Session.StageReset)
        ]
        (new_reset,) = [
            e for e in rt.app.session_events(new.id) if isinstance(e, Session.StageReset)
        ]
        assert old_reset.reset_from is None  # upcast: not recorded in version 1
        assert new_reset.reset_from is Status.FAILED
        assert (old_reset.actor, old_reset.reason) == ("alice", "retry")
        # The projections read the log through the same mapper.
        assert rt.runner.catch_up() >= 0
        with rt.engine.connect() as conn:
            from sqlalchemy import select

            from projections.schema import session_stage_status as sss

            status = conn.execute(
                select(sss.c.status).where(
                    sss.c.session_id == old.id, sss.c.stage == Stage.TRANSCRIPT_FETCH.value
                )
            ).scalar_one()
        assert status == "PENDING"
