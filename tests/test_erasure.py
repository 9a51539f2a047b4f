"""Erasure of personal data through the real `livedash`, on SQLite and on PostgreSQL: after
`erase`, no byte of the session's transcript, IP address or analysis is left in any table of
the database, a rebuild does not bring it back, the hash chain still verifies, and the other
session keeps its content."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from starlette.testclient import TestClient

from cli.runtime import Runtime
from cli.web.app import build_app
from domain.company import Company
from domain.payloads import FetchedTranscript
from domain.personal import parse_retention
from domain.session import Session
from domain.stages import Stage
from processors.runtime.retention import RetentionSweep
from processors.service.backend import Backend
from processors.service.erase import erase_sessions
from tests.conftest import REPO, Livedash
from tests.factories import T0, Clock, row
from tests.test_cli_e2e import RUN

TRANSCRIPT = """\
[01.05.2025 12:11:18] User: Hoi, ik ben ziek {m}. Wie moet ik bellen?
[01.05.2025 12:11:20] Assistant: Wat vervelend! Meld je ziek bij je leidinggevende.
[01.05.2025 12:13:40] User: Moet ik een doktersbriefje hebben {m}?
[01.05.2025 12:13:42] Assistant: Nee, pas vanaf de derde ziektedag.
"""
ERASED = ("ZEBRAQUAGGA", "203.0.113.77")
KEPT = ("GIRAFFEOKAPI", "198.51.100.88")


def _row(external_id: str, ip: str, marker: str, transcript: str) -> str:
    return (
        f"{external_id},01.05.2025 12:11:18,01.05.2025 12:59:00,{ip},NL,dutch,2,happy,no,no,"
        f"{transcript},3.458,56027,0.0083,Onboarding,Hoi {marker}\n"
    )


def _setup(livedash: Livedash, tmp_path: Path) -> None:
    key = tmp_path / "master.key"
    key.write_text(base64.b64encode(os.urandom(32)).decode())
    livedash.env["LIVEDASH_MASTER_KEY_FILE"] = str(key)
    src = tmp_path / "export"
    (src / "t").mkdir(parents=True)
    (src / "t" / "a.txt").write_text(TRANSCRIPT.format(m=ERASED[0]), encoding="utf-8")
    (src / "t" / "b.txt").write_text(TRANSCRIPT.format(m=KEPT[0]), encoding="utf-8")
    csv = src / "export.csv"
    csv.write_text(
        _row("s-gone", ERASED[1], ERASED[0], "t/a.txt")
        + _row("s-kept", KEPT[1], KEPT[0], "t/b.txt")
    )
    livedash("init")
    livedash("company", "add", "Acme", "--csv-url", str(csv), "--timezone", "Europe/Amsterdam")
    livedash("import", str(csv), "--company", "Acme")
    livedash(*RUN)


def _tables_bytes(url: str) -> dict[str, bytes]:
    """Every row of every table of the database, as raw bytes per table (blobs as stored;
    on PostgreSQL each row's text form, where bytea shows as hex)."""
    out: dict[str, bytes] = {}
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.split("///", 1)[1])
        try:
            names = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for name in names:
                parts = []
                for r in con.execute(f'SELECT * FROM "{name}"'):
                    for v in r:
                        parts.append(v if isinstance(v, bytes) else str(v).encode())
                out[name] = b"\x00".join(parts)
        finally:
            con.close()
        return out
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as con:
        names = [
            n
            for (n,) in con.execute(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
        ]
        for name in names:
            schema, table = name.split(".", 1)
            rows = con.execute(f'SELECT t::text FROM "{schema}"."{table}" t').fetchall()
            out[name] = "\x00".join(r[0] for r in rows).encode()
    return out


def _found(url: str, markers: tuple[str, ...]) -> set[tuple[str, str]]:
    hits = set()
    for table, data in _tables_bytes(url).items():
        for m in markers:
            if m.encode() in data or m.encode().hex().encode() in data:
                hits.add((table, m))
    return hits


def _wrapped_key(url: str, external_id: str) -> bytes:
    """The session's data key as stored (wrapped), read as a user at a SQL prompt would."""
    query = (
        "SELECT k.wrapped_key FROM session_data_keys k JOIN sessions s "
        "ON replace(k.session_id, '-', '') = replace(CAST(s.session_id AS TEXT), '-', '') "
        f"WHERE s.external_id = '{external_id}'"
    )
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.split("///", 1)[1])
        try:
            found = con.execute(query).fetchone()
        finally:
            con.close()
    else:
        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as pg:
            found = pg.execute(query).fetchone()
    assert found is not None and found[0]
    return bytes(found[0])


def _json(result: Any) -> Any:
    return json.loads(result.stdout)


def test_erase_leaves_no_plaintext_rebuild_keeps_it_gone_chain_verifies(
    livedash: Livedash, tmp_path: Path
) -> None:
    _setup(livedash, tmp_path)
    url = livedash.database_url
    # The log holds neither session's content; the read models hold both.
    before = _found(url, ERASED + KEPT)
    assert {m for _, m in before} == set(ERASED + KEPT), before
    assert not any(t.endswith("events") for t, _ in before), before

    wrapped = _wrapped_key(url, "s-gone")
    erased = _json(
        livedash("--actor", "dpo", "erase", "s-gone", "--reason", "request 42", "--yes", "--json")
    )
    tables = _tables_bytes(url).values()
    assert not any(wrapped in t or wrapped.hex().encode() in t for t in tables)  # key gone
    if url.startswith("sqlite"):  # not even in the file's free pages or the WAL
        path = Path(url.split("///", 1)[1])
        files = [path, Path(f"{path}-wal")]
        assert not any(wrapped in f.read_bytes() for f in files if f.exists())
    assert [e["external_id"] for e in erased["erased"]] == ["s-gone"]
    assert "transcript.text" in erased["fields"] and "row.ip_address" in erased["fields"]

    assert _found(url, ERASED) == set()
    assert {m for _, m in _found(url, KEPT)} == set(KEPT)  # the other session is untouched
    # What the scrub left is what a rebuild computes from the redacted events.
    assert "every projection equals" in livedash("projections", "verify").stdout
    livedash("projections", "rebuild")
    assert _found(url, ERASED) == set()
    assert {m for _, m in _found(url, KEPT)} == set(KEPT)
    livedash("audit", "verify")
    exported = livedash("export", "--company", "Acme").stdout
    assert not any(m in exported for m in ERASED) and all(m in exported for m in KEPT)

    history = _json(livedash("history", "s-gone", "--json"))
    assert history["erased"]["erased_by"] == "dpo"
    assert history["erased"]["reason"] == "request 42"
    events = [e["event"] for e in history["events"]]
    assert events[-1] == "PersonalDataErased" and events.count("StageCompleted") == 4
    parsed = next(e for e in history["events"] if e["event"] == "SessionParsed")
    assert parsed["data"]["messages"] == 0  # the messages are gone, their counts stay
    assert parsed["data"]["fields"]["message_count"] == 4
    kept = _json(livedash("history", "s-kept", "--json"))
    assert kept["erased"] is None
    assert next(e for e in kept["events"] if e["event"] == "SessionParsed")["data"]["messages"] == 4

    again = _json(livedash("erase", "s-gone", "--reason", "twice", "--yes", "--json"))
    assert again["erased"] == [] and len(again["already_erased"]) == 1
    # A re-import of the erased session's row stores nothing new for it.
    imported = livedash("import", str(tmp_path / "export" / "export.csv"), "--company", "Acme")
    assert "changed 0" in imported.stdout
    assert _found(url, ERASED) == set()

    # Retention: the daemon erases what started longer ago than the company keeps it.
    updated = _json(livedash("company", "update", "Acme", "--retain-transcripts", "1d", "--json"))
    assert updated["retain_transcripts"] == "1d"
    livedash(*RUN)
    assert _json(livedash("history", "s-kept", "--json"))["erased"]["erased_by"] == "retention"
    assert _found(url, ERASED + KEPT) == set()
    livedash("audit", "verify")


def test_sessions_stored_before_encryption_are_refused_by_name(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
    env["PYTHONPATH"] = str(REPO)
    livedash = Livedash(f"sqlite:///{tmp_path / 'plain.db'}", tmp_path, env)
    csv = tmp_path / "export.csv"
    csv.write_text(_row("s-old", KEPT[1], KEPT[0], ""))
    assert "unsealed" in livedash("init").stdout
    livedash("company", "add", "Acme", "--csv-url", str(csv))
    livedash("import", str(csv), "--company", "Acme")
    no_key = livedash("erase", "s-old", "--reason", "r", "--yes", check=False)
    assert no_key.code == 2 and "unsealed" in no_key.stderr
    assert _json(livedash("status", "--json"))["personal_data"] == "plain"
    assert "`erase` cannot shred it" in livedash("status").stdout

    key = tmp_path / "master.key"
    key.write_text(base64.b64encode(os.urandom(32)).decode())
    env["LIVEDASH_MASTER_KEY_FILE"] = str(key)  # encryption on from now on
    refused = livedash("erase", "s-old", "--reason", "r", "--yes", "--json", check=False)
    assert refused.code == 1
    assert "before encryption" in _json(refused)["refused"][0]["reason"]
    assert "PersonalDataErased" not in livedash("history", "s-old").stdout
    unconfirmed = livedash("erase", "s-old", "--reason", "r", check=False)
    assert unconfirmed.code == 2 and "--yes" in unconfirmed.stderr  # no terminal: no erasure
    assert _json(livedash("status", "--json"))["personal_data"] == "sealed"

    # Once sealing is on, a process without the master key is refused, not half-blind.
    del env["LIVEDASH_MASTER_KEY_FILE"]
    refused = livedash("status", check=False)
    assert refused.code == 2 and "master key" in refused.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_retention_erases_sessions_as_they_age_out(database_url: str) -> None:
    """The daemon's sweep, driven by a test clock: nothing is erased before the retention has
    passed, then exactly the sessions that started long enough ago, by actor `retention`."""
    rt = Runtime.open(database_url, create=True, master_key=os.urandom(32))
    try:
        clock = Clock(T0)
        b = Backend(rt.app, rt.engine, rt.runner, clock)
        company = Company.register("Acme", "/tmp/x.csv", clock())
        company.set_retention(parse_retention("90d"), "ops", "policy", clock())
        rt.app.register_company(company)
        old = Session.import_row(company.id, row("old", initial_message="OLDMARK"), "t", clock())
        new = Session.import_row(
            company.id, row("new", start_time=T0 + timedelta(days=30)), "t", clock()
        )
        rt.app.save_batch([old, new])
        rt.runner.catch_up()
        logged: list[str] = []
        sweep = RetentionSweep(b, lambda kind, **_: logged.append(kind))

        clock.advance(89 * 86400)
        assert sweep.sweep() == 0
        clock.advance(2 * 86400)  # 91 days after `old` started, 61 after `new`
        assert sweep.sweep() == 1 and logged == ["retention_erased"]
        rt.runner.catch_up()
        assert rt.app.get_session(old.id).erased_by == "retention"
        assert rt.app.get_session(old.id).row.initial_message is None
        assert rt.app.get_session(new.id).erased_at is None
        assert rt.app.get_session(new.id).row.initial_message == "hoi"
        assert sweep.sweep() == 0  # erased once
        page = TestClient(build_app(b, None)).get(f"/sessions/{old.id}")
        assert page.status_code == 200
        assert "Personal data erased on" in page.text and "by retention" in page.text
        clock.advance(30 * 86400)
        assert sweep.sweep() == 1
    finally:
        rt.close()


def test_the_encryption_benchmark_produces_every_figure(tmp_path: Path) -> None:
    """At a tiny size, so the benchmark never rots; its numbers are not judged here."""
    out = tmp_path / "seal.json"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_encryption.py"), "--sessions", "20",
         "--runs", "1", "--kinds", "sqlite", "--out", str(out)],
        cwd=REPO, capture_output=True, timeout=300, check=True,
    )  # fmt: skip
    figures = json.loads(out.read_text())["sqlite"]
    assert set(figures) == {
        "pipeline_sessions_per_s",
        "write_events_per_s",
        "read_events_per_s",
        "decode_us_per_event",
        "encode_decode_us_per_event",
    }
    assert all(f["plain"]["median"] > 0 and f["sealed"]["median"] > 0 for f in figures.values())


def test_personal_data_arriving_after_the_erasure_is_not_stored(database_url: str) -> None:
    """A fetch that finishes after the erasure: its event is stored without a ciphertext, no
    new key is made, and the transcript reads redacted; the log holds no byte of it."""
    rt = Runtime.open(database_url, create=True, master_key=os.urandom(32))
    try:
        clock = Clock(T0)
        b = Backend(rt.app, rt.engine, rt.runner, clock)
        company = rt.app.register_company(Company.register("Acme", "/tmp/x.csv", clock()))
        session = Session.import_row(company.id, row("late"), "t", clock())
        rt.app.save_batch([session])
        rt.runner.catch_up()
        assert [e.external_id for e in erase_sessions(b, [session.id], "dpo", "r").erased] == [
            "late"
        ]
        again = rt.app.get_session(session.id)
        attempt = again.start_stage(
            Stage.TRANSCRIPT_FETCH, "w", clock() + timedelta(minutes=1), clock()
        )
        text = "User: LATEARRIVALMARK"
        transcript = FetchedTranscript(
            url="https://t.example/late", text=text, sha256="0" * 64, size=len(text),
            content_type="text/plain", fetched_at=clock(),
        )  # fmt: skip
        again.record_transcript(attempt, transcript, clock(), {})
        assert not rt.app.save_batch([again]).lost
        rt.runner.catch_up()
        assert rt.app.get_session(session.id).transcript.text == ""
        stored = rt.app.stored_events_of([session.id])
        assert not any(b"LATEARRIVALMARK" in s.state for s in stored)
        assert rt.app.data_keys is not None
        assert rt.app.data_keys.read([session.id]) == {session.id: None}
        assert _found(database_url, ("LATEARRIVALMARK",)) == set()
    finally:
        rt.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sealed_value_opens_only_in_its_own_event(database_url: str) -> None:
    """The associated data binds a ciphertext to its originator, version and topic: copied
    into another session's event it does not open (the value reads redacted)."""
    rt = Runtime.open(database_url, create=True, master_key=os.urandom(32))
    try:
        clock = Clock(T0)
        a = Session.import_row(uuid.uuid4(), row("a", initial_message="SECRET-A"), "t", clock())
        b = Session.import_row(uuid.uuid4(), row("b", initial_message="other"), "t", clock())
        rt.app.save_batch([a, b])
        stored = {s.originator_id: s for s in rt.app.stored_events_of([a.id, b.id])}
        sa, sb = stored[a.id], stored[b.id]
        assert b"SECRET-A" not in sa.state and b'"_sealed_"' in sa.state
        assert rt.app.mapper.to_domain_event(sa).row.initial_message == "SECRET-A"
        state_b = json.loads(sb.state)
        state_b["_sealed_"] = json.loads(sa.state)["_sealed_"]
        moved = StoredEvent(sb.originator_id, 1, sb.topic, json.dumps(state_b).encode())
        assert rt.app.mapper.to_domain_event(moved).row.initial_message is None
    finally:
        rt.close()
