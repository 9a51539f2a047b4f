"""Partition claims of a fleet on PostgreSQL: join, leave, take over from the dead, never two
owners; time is made short by backdating rows, not by sleeping."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text

from domain.partitions import PARTITIONS, last_bytes, partition_of
from processors.clock import utc_now
from projections.partitions import PartitionKeeper, live_daemons, unowned_partitions
from projections.schema import fleet_partitions
from projections.workers import Presence
from tests.harness import runtime


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    with runtime(url) as rt:
        yield rt.engine


def _daemon(engine: Engine, name: str, timeout: float = 5.0) -> PartitionKeeper:
    Presence(engine, name, "host", 1, utc_now, 0).join()
    return PartitionKeeper(engine, name, claim_timeout=timeout)


def _owners(engine: Engine) -> dict[int, str | None]:
    with engine.connect() as conn:
        rows = conn.execute(select(fleet_partitions.c.partition, fleet_partitions.c.owner))
        return {p: o for p, o in rows}


def test_a_joining_daemon_gets_its_share_and_a_leaving_one_gives_it_back(pg_url: str) -> None:
    with _engine(pg_url) as engine:
        a = _daemon(engine, "a")
        assert len(a.keep({}).held) == PARTITIONS, "alone, it holds every partition"
        b = _daemon(engine, "b")
        assert b.keep({}).held == frozenset(), "nothing is free until the other gives back"
        change = a.keep({})
        assert (change.live, change.share, len(change.held)) == (2, 32, 32)
        assert len(b.keep({}).held) == 32
        assert a.held.isdisjoint(b.held) and len(a.held | b.held) == PARTITIONS
        assert set(_owners(engine).values()) == {"a", "b"}

        b.leave()
        Presence(engine, "b", "host", 1, utc_now, 0).leave("signal")
        with engine.connect() as conn:
            assert unowned_partitions(conn) == 32
            assert live_daemons(conn, 5.0) == 1
        assert len(a.keep({}).held) == PARTITIONS


def test_partitions_with_work_in_flight_are_kept_until_it_is_done(pg_url: str) -> None:
    with _engine(pg_url) as engine:
        a = _daemon(engine, "a")
        a.keep({})
        _daemon(engine, "b")
        busy = dict.fromkeys(range(PARTITIONS), 1)
        change = a.keep(busy)
        assert len(change.held) == PARTITIONS and change.released == ()
        assert len(change.working) == 32, "above its share: no new work there"
        busy = {p: 1 for p in change.working}  # the leaving ones finished their work
        change = a.keep(busy)
        assert change.held == change.working and len(change.held) == 32


def test_a_dead_daemons_partitions_are_taken_over_after_the_claim_timeout(pg_url: str) -> None:
    with _engine(pg_url) as engine:
        a = _daemon(engine, "a")
        b = _daemon(engine, "b")
        a.keep({})
        b.keep({})
        a.keep({})
        b.keep({})
        assert len(a.held) == len(b.held) == 32
        assert b.keep({}).taken == (), "a live owner's partitions are not taken"
        with engine.begin() as conn:  # a stops heartbeating: 6 s ago, past the 5 s timeout
            conn.execute(
                text(
                    "UPDATE daemon_workers SET heartbeat_at = now() - interval '6 s' "
                    "WHERE worker_id = 'a'"
                )
            )
            conn.execute(
                text(
                    "UPDATE fleet_partitions SET expires_at = now() - interval '1 s' "
                    "WHERE owner = 'a'"
                )
            )
        change = b.keep({})
        assert (change.live, len(change.held)) == (1, PARTITIONS)
        assert set(change.taken) == set(a.held)
        assert set(_owners(engine).values()) == {"b"}


def test_never_two_owners_whatever_the_order_of_heartbeats(pg_url: str) -> None:
    with _engine(pg_url) as engine:

        @settings(max_examples=25, deadline=None)
        @given(st.lists(st.sampled_from(["a", "b", "c", "a-", "b-"]), min_size=3, max_size=25))
        def check(steps: list[str]) -> None:
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM fleet_partitions"))
                conn.execute(text("DELETE FROM daemon_workers"))
            keepers = {n: _daemon(engine, n) for n in ("a", "b", "c")}
            for step in steps:
                name, leaves = step.rstrip("-"), step.endswith("-")
                if leaves:
                    keepers[name].leave()
                else:
                    keepers[name].keep({})
                held = [k.held for k in keepers.values()]
                assert sum(len(h) for h in held) == len(frozenset().union(*held)), "two owners"
                owners = _owners(engine)
                for n, k in keepers.items():
                    assert k.held == {p for p, o in owners.items() if o == n}

        check()


def test_concurrent_heartbeats_never_share_a_partition(pg_url: str) -> None:
    with _engine(pg_url) as engine:
        keepers = [_daemon(engine, f"d{i}") for i in range(4)]
        errors: list[BaseException] = []

        def beat(k: PartitionKeeper) -> None:
            try:
                for _ in range(15):
                    k.keep({})
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=beat, args=(k,)) for k in keepers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors and not any(t.is_alive() for t in threads)
        for k in keepers:
            k.keep({})
        for k in keepers:
            k.keep({})
        held = [k.held for k in keepers]
        assert sum(len(h) for h in held) == len(frozenset().union(*held)) == PARTITIONS
        assert all(len(h) == PARTITIONS // 4 for h in held), [len(h) for h in held]


@given(st.uuids(), st.sets(st.integers(0, PARTITIONS - 1)))
def test_the_text_match_agrees_with_the_hash(session_id: object, held: set[int]) -> None:
    from uuid import UUID

    assert isinstance(session_id, UUID)
    in_sql = str(session_id)[-2:] in last_bytes(held)
    assert in_sql == (partition_of(session_id) in held)
