"""`livedash export --company X`: the company's events and nobody else's, in log order, each
of which an auditor can check against its chain link with SHA-256 alone."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from uuid import UUID

from sqlalchemy import select

from cli.errors import ExitCode
from projections.schema import sessions as sessions_table
from tests.conftest import SAMPLE_CSV, Livedash
from tests.harness import runtime


def recompute(line: dict[str, Any]) -> str:
    """docs/audit.md's recipe, written out independently of projections/chain.py."""
    chain = line["chain"]
    topic = chain["topic"].encode()
    state = base64.b64decode(chain["state_base64"])
    h = hashlib.sha256(bytes.fromhex(chain["previous"]))
    h.update(line["position"].to_bytes(8, "big"))
    h.update(UUID(line["originator_id"]).bytes)
    h.update(line["version"].to_bytes(8, "big", signed=True))
    h.update(len(topic).to_bytes(4, "big") + topic)
    h.update(len(state).to_bytes(8, "big") + state)
    return h.hexdigest()


def test_export_is_the_companys_log_bound_to_the_chain(livedash: Livedash) -> None:
    livedash("init")
    for name in ("Jumbo", "Acme"):
        livedash("company", "add", name, "--csv-url", "https://csv.example/a.csv")
        livedash("import", str(SAMPLE_CSV), "--company", name)
    livedash("run", "--until-idle", "--idle-horizon", "0", "--csv-interval", "0")

    result = livedash("export", "--company", "Jumbo")
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert "exported" in result.stderr and str(len(lines)) in result.stderr

    with runtime(livedash.database_url, create=False) as rt:
        jumbo = rt.app.get_company("Jumbo")
        with rt.engine.connect() as conn:
            query = select(sessions_table.c.session_id).where(
                sessions_table.c.company_id == jumbo.id
            )
            sessions = [r[0] for r in conn.execute(query)]
        expected = len(rt.app.recorder.select_events(jumbo.id)) + sum(
            len(rt.app.session_events(s)) for s in sessions
        )
        owners = {jumbo.id, *sessions}
    assert len(lines) == expected and len(sessions) == 6
    assert {UUID(x["originator_id"]) for x in lines} <= owners
    positions = [x["position"] for x in lines]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert all(recompute(x) == x["chain"]["hash"] for x in lines)
    types = {x["type"] for x in lines}
    assert {"Company.Registered", "Session.Imported", "Session.StageStarted"} <= types
    imported = next(x for x in lines if x["type"] == "Session.Imported")
    assert imported["data"]["row"]["external_id"]

    head = json.loads(livedash("audit", "head", "--json").stdout)
    assert lines[-1]["position"] <= head["position"]

    middle = lines[len(lines) // 2]["time"]
    later = livedash("export", "--company", "Jumbo", "--since", middle).stdout.splitlines()
    assert 0 < len(later) < len(lines)
    assert all(json.loads(x)["time"] >= middle for x in later)

    unknown = livedash("export", "--company", "Nobody", check=False)
    assert unknown.code == ExitCode.FAILED and "company list" in unknown.stderr
    bad = livedash("export", "--company", "Jumbo", "--since", "yesterday", check=False)
    assert bad.code == ExitCode.USAGE and "ISO 8601" in bad.stderr
