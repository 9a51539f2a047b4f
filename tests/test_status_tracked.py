"""The status projection's per-session state takes what status events change and refuses
anything it does not know, instead of silently dropping it."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.stage_state import new_states
from domain.stages import Stage
from projections.bulk import STAGE_ROWS
from projections.status import _Tracked, row_from_state, state_from_row


def test_unknown_session_fields_fail_loudly_and_known_data_is_left_alone() -> None:
    t = _Tracked(uuid4(), "e1", new_states(), {})
    t.row = object()  # session data a changed row clears: not status, not kept
    assert not hasattr(t, "row")
    with pytest.raises(AttributeError, match="does not know session field 'lease'"):
        t.lease = 1


def test_a_stage_row_round_trips_by_column_name() -> None:
    t = _Tracked(uuid4(), "e1", new_states(), {})
    state = t.stages[Stage.AI_ANALYSIS]
    state.attempt, state.attempts_run, state.retry_count, state.note = 3, 2, 1, "n"
    row = row_from_state(uuid4(), t, Stage.AI_ANALYSIS)
    assert len(row) == len(STAGE_ROWS.columns)
    assert row[STAGE_ROWS.columns.index("attempts_run")] == 2
    assert state_from_row(row) == state
