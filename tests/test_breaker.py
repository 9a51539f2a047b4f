"""The circuit breaker's rules (domain/breaker.py) as a state machine, for all sequences of
outcomes, probe requests by several daemons and passing time; and the Pipeline aggregate that
records it, stored and loaded on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.breaker import BreakerRules, BreakerState, RecentAttempts
from domain.pipeline import Pipeline
from domain.stages import Stage
from tests.harness import runtime

T0 = datetime(2026, 12, 1, tzinfo=UTC)
RULES = BreakerRules(window=4, ratio=0.5, cool_down=10, max_cool_down=75, probe_timeout=50)

# One step: ("take", worker) asks for the probe; ("fail"|"ok", worker) is the outcome of that
# worker's probe; ("wait", seconds) lets time pass.
steps = st.one_of(
    st.tuples(st.sampled_from(["take", "fail", "ok"]), st.sampled_from(["a", "b", "c"])),
    st.tuples(st.just("wait"), st.floats(min_value=0, max_value=120)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(steps, max_size=60))
def test_one_probe_at_a_time_doubling_capped_cool_downs_and_a_success_closes(
    ops: list[tuple[str, object]],
) -> None:
    state = BreakerState().opened(T0, "tripped", RULES)
    assert state is not None and state.cool_down == RULES.cool_down
    now, openings = T0, 1
    for op, arg in ops:
        if op == "wait":
            assert isinstance(arg, float)
            now += timedelta(seconds=arg)
            continue
        worker = str(arg)
        if op == "take":
            granted = state.probing(worker, now, RULES)
            if state.phase == "half_open" and now - state.probe_since < timedelta(  # type: ignore[operator]
                seconds=RULES.probe_timeout
            ):
                assert granted is None  # never a second probe while one is out
            if state.phase == "open" and state.reopens_at and now < state.reopens_at:
                assert granted is None  # not before the cool-down is over
            if state.phase == "closed":
                assert granted is None
            if granted is not None:
                assert granted.phase == "half_open" and granted.probe_by == worker
                assert granted.cool_down == state.cool_down
                state = granted
            continue
        if state.phase != "half_open" or state.probe_by != worker:
            continue  # only the probe's holder reports a probe outcome
        if op == "ok":
            closed = state.closed(now, "probe ok")
            assert closed is not None and closed.allows and closed.cool_down == 0
            state, openings = closed, 0
            reopened = state.opened(now, "tripped again", RULES)
            assert reopened is not None and reopened.cool_down == RULES.cool_down
            state, openings = reopened, 1
        else:
            again = state.opened(now, "probe failed", RULES)
            assert again is not None and again.phase == "open"
            openings += 1
            expected = min(RULES.max_cool_down, RULES.cool_down * 2 ** (openings - 1))
            assert again.cool_down == expected  # doubles, capped
            assert again.reopens_at == now + timedelta(seconds=expected)
            state = again
        assert not state.allows


@given(st.lists(st.booleans(), max_size=50))
def test_the_window_trips_only_when_full_and_failing_enough(outcomes: list[bool]) -> None:
    window = RecentAttempts()
    for failed in outcomes:
        window = window.add(failed, RULES)
        last = window.failures
        assert len(last) <= RULES.window
        expected = len(last) == RULES.window and sum(last) >= RULES.ratio * RULES.window
        assert window.tripped(RULES) is expected


def test_transitions_that_do_not_apply_record_nothing() -> None:
    closed = BreakerState()
    assert closed.allows
    assert closed.closed(T0, "x") is None  # closing a closed breaker
    assert closed.probing("a", T0, RULES) is None
    opened = closed.opened(T0, "x", RULES)
    assert opened is not None and opened.opened(T0, "again", RULES) is None
    due = opened.probing("a", T0 + timedelta(seconds=10), RULES)
    assert due is not None
    assert due.probe_returned("b", T0) is None  # only the holder gives its probe back
    back = due.probe_returned("a", T0 + timedelta(seconds=11))
    assert back is not None and back.phase == "open" and back.cool_down == opened.cool_down
    assert back.probing("b", T0 + timedelta(seconds=11), RULES) is not None  # due at once
    # A probe presumed lost (its daemon died) lets another go.
    late = T0 + timedelta(seconds=10 + RULES.probe_timeout)
    assert due.probing("b", late, RULES) is not None


def test_the_pipeline_is_stored_and_raced_for(database_url: str) -> None:
    with runtime(database_url) as rt, runtime(database_url) as other:
        now = datetime.now(UTC)
        _, changed = rt.app.change_pipeline(
            lambda p: p.pause(Stage.AI_ANALYSIS, None, None, "budget", "alice", now), now
        )
        assert changed
        ai = Stage.AI_ANALYSIS
        rt.app.change_pipeline(lambda p: p.open_breaker(ai, "llm", "d1", "5xx", RULES, now), now)
        later = now + timedelta(seconds=RULES.cool_down)
        # Two daemons each read the open breaker, then both ask for the probe: one gets it.
        stale = other.app.pipeline(later)
        first = rt.app.pipeline(later)
        assert first.take_probe(ai, "llm", "d1", RULES, later) is not None
        rt.app.save(first)
        _, granted = other.app.change_pipeline(
            lambda p: p.take_probe(ai, "llm", "d2", RULES, later), later
        )
        assert granted is None  # reread after the lost race: the probe is d1's
        assert stale.breaker(ai, "llm").phase == "open"
        loaded = other.app.pipeline(later)
        assert loaded.breaker(ai, "llm").probe_by == "d1"
        assert loaded.paused(ai) is not None and loaded.paused(ai).actor == "alice"  # type: ignore[union-attr]
        for _ in range(60):  # past a snapshot: the state survives it
            rt.app.change_pipeline(lambda p: p.resume(ai, None, "ok", "bob", later), later)
            rt.app.change_pipeline(lambda p: p.pause(ai, None, None, "r", "bob", later), later)
        again = other.app.pipeline(later)
        assert isinstance(again, Pipeline)
        assert again.breaker(ai, "llm").probe_by == "d1"
        assert again.paused(ai) is not None
