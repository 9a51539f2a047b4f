"""The log's hash chain: intact logs verify; a row altered, removed or inserted behind the
project's back (with the append-only triggers dropped) is found at its position; a log and
chain rewritten together are caught by the head an auditor kept."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, text

from cli.errors import ExitCode
from cli.runtime import Runtime, events_table, log_reader
from domain.company import Company
from processors.clock import utc_now
from projections.chain import extend, verify
from projections.schema import audit_chain
from store.append_only import TRIGGER
from tests.conftest import SAMPLE_CSV, Livedash
from tests.harness import imported, runtime


def _fill(rt: Runtime, sessions: int = 5) -> Company:
    company = Company.register("Acme", "https://csv.example/a.csv", utc_now())
    rt.app.register_company(company)
    imported(rt, company.id, sessions, "s", utc_now)
    return company


def _unprotect(rt: Runtime) -> None:
    """What someone with the database's owner rights could do."""
    with rt.engine.begin() as conn:
        if rt.config.kind == "postgres":
            conn.execute(text(f"DROP TRIGGER {TRIGGER} ON {events_table(rt.config)}"))
        else:
            conn.execute(text(f"DROP TRIGGER {TRIGGER}_update"))
            conn.execute(text(f"DROP TRIGGER {TRIGGER}_delete"))


def _position(rt: Runtime) -> str:
    return "notification_id" if rt.config.kind == "postgres" else "rowid"


def test_an_untouched_log_verifies_and_the_chain_follows_it(database_url: str) -> None:
    with runtime(database_url) as rt:
        company = _fill(rt)
        first = extend(log_reader(rt))
        assert first.position == 6  # the company and five sessions
        verdict = verify(log_reader(rt))
        assert verdict.intact and verdict.checked == 6
        imported(rt, company.id, 2, "t", utc_now)
        second = extend(log_reader(rt))
        assert second.position == 8 and second.hash != first.hash
        assert verify(log_reader(rt), start=6).checked == 2
        assert verify(log_reader(rt), expect=first).intact


@pytest.mark.parametrize("kind", ["altered", "altered_as_text", "removed"])
def test_a_changed_or_removed_event_is_found_at_its_position(database_url: str, kind: str) -> None:
    with runtime(database_url) as rt:
        _fill(rt)
        extend(log_reader(rt))
        _unprotect(rt)
        table, pos = events_table(rt.config), _position(rt)
        with rt.engine.begin() as conn:
            if kind == "altered":
                conn.execute(text(f"UPDATE {table} SET topic = topic || 'x' WHERE {pos} = 4"))
            elif kind == "altered_as_text" and rt.config.kind == "sqlite":
                # SQLite lets a BLOB column take TEXT: the state comes back as str.
                edit = "replace(CAST(state AS TEXT), 'e', 'E')"
                conn.execute(text(f"UPDATE {table} SET state = {edit} WHERE {pos} = 4"))
            elif kind == "altered_as_text":
                conn.execute(text(f"UPDATE {table} SET state = state || '\\x20' WHERE {pos} = 4"))
            else:
                conn.execute(text(f"DELETE FROM {table} WHERE {pos} = 4"))
        verdict = verify(log_reader(rt))
    assert verdict.finding is not None
    expected = "removed" if kind == "removed" else "altered"
    assert (verdict.finding.kind, verdict.finding.position) == (expected, 4)
    assert verdict.checked == 3


def test_the_last_event_cut_off_is_found(database_url: str) -> None:
    with runtime(database_url) as rt:
        _fill(rt)
        extend(log_reader(rt))
        _unprotect(rt)
        with rt.engine.begin() as conn:
            conn.execute(text(f"DELETE FROM {events_table(rt.config)} WHERE {_position(rt)} = 6"))
        verdict = verify(log_reader(rt))
    assert verdict.finding is not None
    assert (verdict.finding.kind, verdict.finding.position) == ("removed", 6)


def test_an_event_inserted_below_the_head_is_found(pg_url: str) -> None:
    with runtime(pg_url) as rt:
        company = _fill(rt, 2)  # positions 1-3
        table = events_table(rt.config)
        with rt.engine.begin() as conn:  # a gap at 4, as a rolled-back append leaves one
            conn.execute(
                text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'notification_id'))")
            )
        imported(rt, company.id, 2, "t", utc_now)
        assert extend(log_reader(rt)).position == 6
        _unprotect(rt)
        with rt.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO {table} (notification_id, originator_id, originator_version, "
                    f"topic, state) SELECT 4, originator_id, 99, topic, state FROM {table} "
                    "WHERE notification_id = 3"
                )
            )
        verdict = verify(log_reader(rt))
    assert verdict.finding is not None
    assert (verdict.finding.kind, verdict.finding.position) == ("inserted", 4)


def test_a_log_rewritten_with_its_chain_is_caught_by_the_kept_head(database_url: str) -> None:
    with runtime(database_url) as rt:
        _fill(rt)
        kept = extend(log_reader(rt))
        _unprotect(rt)
        table, pos = events_table(rt.config), _position(rt)
        with rt.engine.begin() as conn:  # alter event 5 and re-link from there
            conn.execute(text(f"UPDATE {table} SET topic = topic || 'x' WHERE {pos} = 5"))
            conn.execute(delete(audit_chain).where(audit_chain.c.position >= 5))
        extend(log_reader(rt))
        assert verify(log_reader(rt)).intact, "the chain alone cannot tell"
        verdict = verify(log_reader(rt), expect=kept)
    assert verdict.finding is not None
    assert (verdict.finding.kind, verdict.finding.position) == ("expected", 6)


def test_audit_commands(livedash: Livedash) -> None:
    livedash("init")
    livedash("company", "add", "Acme", "--csv-url", "https://csv.example/a.csv")
    head = json.loads(livedash("audit", "head", "--json").stdout)
    assert head["position"] == 1 and len(head["hash"]) == 64
    assert head["digest"] == f"1:{head['hash']}"
    ok = livedash("audit", "verify", "--expect", head["digest"], "--json")
    assert json.loads(ok.stdout) == {
        "intact": True,
        "checked": 1,
        "head": {"position": 1, "hash": head["hash"]},
        "finding": None,
    }
    wrong = "1:" + "0" * 64
    bad = livedash("audit", "verify", "--expect", wrong, check=False)
    assert bad.code == 6 and "expected at position 1" in bad.stdout
    usage = livedash("audit", "verify", "--expect", "nonsense", check=False)
    assert usage.code == 2 and "POSITION:HASH" in usage.stderr


def test_a_daemon_links_what_it_wrote(livedash: Livedash) -> None:
    """A finished run leaves the whole log linked: `audit verify` checks every event without
    `audit head` having been run."""
    livedash("init")
    livedash("company", "add", "Jumbo", "--csv-url", "https://csv.example/a.csv")
    livedash("import", str(SAMPLE_CSV), "--company", "Jumbo")
    livedash("run", "--until-idle", "--idle-horizon", "0", "--csv-interval", "0")
    verdict = json.loads(livedash("audit", "verify", "--json").stdout)
    assert verdict["intact"] is True
    assert verdict["checked"] == verdict["head"]["position"] > 12
    linked_now = json.loads(livedash("audit", "head", "--json").stdout)  # links the rest
    assert linked_now["position"] == verdict["head"]["position"], "the run left events unlinked"


def test_a_database_from_before_the_chain_is_told_to_run_init(livedash: Livedash) -> None:
    livedash("init")
    with runtime(livedash.database_url) as rt, rt.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_chain"))
    old = livedash("status", check=False)
    assert old.code == ExitCode.DATABASE
    assert "older version (missing: audit_chain)" in old.stderr
    assert "livedash init" in old.stderr
    livedash("init")
    assert json.loads(livedash("audit", "verify", "--json").stdout)["intact"] is True


def test_an_export_of_a_changed_log_is_refused(livedash: Livedash) -> None:
    livedash("init")
    livedash("company", "add", "Jumbo", "--csv-url", "https://csv.example/a.csv")
    livedash("import", str(SAMPLE_CSV), "--company", "Jumbo")
    assert livedash("export", "--company", "Jumbo").stdout.count("\n") > 6
    with runtime(livedash.database_url, create=False) as rt:
        _unprotect(rt)
        table, pos = events_table(rt.config), _position(rt)
        with rt.engine.begin() as conn:
            conn.execute(text(f"UPDATE {table} SET topic = topic || 'x' WHERE {pos} = 3"))
    refused = livedash("export", "--company", "Jumbo", check=False)
    assert refused.code == ExitCode.TAMPERED
    assert "part at position 3" in refused.stderr and "audit verify" in refused.stderr
