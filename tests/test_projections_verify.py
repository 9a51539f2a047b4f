"""`livedash projections verify`: live projections equal the log's rebuild after a real run;
a row changed, deleted or added behind the runner's back is found and named (exit 7)."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from cli.errors import ExitCode
from projections.schema import analytics_sessions, companies, session_stage_status
from tests.conftest import REPO, Livedash
from tests.harness import runtime

DEMO = REPO / "examples" / "demo"


def _tables(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["table"]: t for t in result["tables"]}


def test_verify_finds_what_was_changed_behind_the_runners_back(
    livedash: Livedash, tmp_path: Path
) -> None:
    livedash("init")
    shutil.copytree(DEMO, tmp_path / "demo")
    livedash("company", "add", "Alpha", "--csv-url", str(tmp_path / "demo" / "sessions.csv"))
    livedash("import", "--company", "Alpha")
    livedash("run", "--until-idle", "--idle-horizon", "0", "--csv-interval", "0", timeout=300)

    clean = json.loads(livedash("projections", "verify", "--json").stdout)
    assert clean["identical"] is True and clean["position"] > 0
    tables = _tables(clean)
    assert {"session_stage_status", "companies", "analytics_sessions"} <= set(tables)
    assert tables["analytics_sessions"]["rows_live"] > 100
    assert all(
        t["rows_live"] == t["rows_rebuilt"] and not t["differences"] for t in tables.values()
    )

    with runtime(livedash.database_url, create=False) as rt, rt.engine.begin() as conn:
        victim, stage = conn.execute(
            select(session_stage_status.c.session_id, session_stage_status.c.stage).limit(1)
        ).one()
        conn.execute(
            update(session_stage_status)
            .where(
                session_stage_status.c.session_id == victim, session_stage_status.c.stage == stage
            )
            .values(status="SKIPPED", attempt=99)
        )
        gone = conn.execute(select(analytics_sessions.c.session_id).limit(1)).scalar_one()
        conn.execute(delete(analytics_sessions).where(analytics_sessions.c.session_id == gone))
        company = dict(conn.execute(select(companies)).mappings().one())
        ghost = {**company, "company_id": company["company_id"].__class__(int=1), "name": "Ghost"}
        conn.execute(insert(companies).values(**ghost))

    bad = livedash("projections", "verify", "--json", check=False)
    assert bad.code == ExitCode.DIFFERS
    found = _tables(json.loads(bad.stdout))
    status = found["session_stage_status"]
    assert status["differences"] == 1
    (changed,) = status["shown"]
    assert changed["kind"] == "differs"
    assert changed["key"] == {"session_id": str(victim), "stage": stage}
    assert set(changed["columns"]) == {"status", "attempt"}
    assert changed["columns"]["attempt"]["live"] == 99
    (missing,) = found["analytics_sessions"]["shown"]
    assert (missing["kind"], missing["key"]) == ("missing", {"session_id": str(gone)})
    (extra,) = found["companies"]["shown"]
    assert extra["kind"] == "extra" and extra["key"]["company_id"].endswith("0001")
    assert all(not t["differences"] for n, t in found.items() if n not in {
        "session_stage_status", "analytics_sessions", "companies"})  # fmt: skip

    table = livedash("projections", "verify", check=False)
    assert table.code == ExitCode.DIFFERS
    assert "differs session_stage_status" in table.stdout


def _count(url: str) -> int:
    with runtime(url, create=False) as rt, rt.engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(session_stage_status)).scalar_one()
        )


def test_rebuild_swap_never_shows_a_half_built_table_and_daemons_keep_running(
    livedash: Livedash, tmp_path: Path
) -> None:
    livedash("init")
    shutil.copytree(DEMO, tmp_path / "demo")
    livedash("company", "add", "Alpha", "--csv-url", str(tmp_path / "demo" / "sessions.csv"))
    livedash("import", "--company", "Alpha")
    livedash("run", "--until-idle", "--idle-horizon", "0", "--csv-interval", "0", timeout=300)
    with runtime(livedash.database_url, create=False) as rt, rt.engine.begin() as conn:
        conn.execute(update(session_stage_status).values(worker="tampered"))

    # A reader counts the status rows all through the swap: it must always see all of them.
    seen: list[int] = []
    done = threading.Event()

    def read() -> None:
        with runtime(livedash.database_url, create=False) as rt:
            while not done.is_set():
                with rt.engine.connect() as conn:
                    seen.append(
                        conn.execute(
                            select(func.count()).select_from(session_stage_status)
                        ).scalar_one()
                    )

    shutil.copytree(DEMO, tmp_path / "beta")
    livedash("company", "add", "Beta", "--csv-url", str(tmp_path / "beta" / "sessions.csv"))
    daemon = livedash.spawn("run", "--csv-interval", "0", "--poll-interval", "0.2")
    reader = threading.Thread(target=read)
    try:
        # New work arrives, and the daemon is at it while the tables change under it.
        livedash("import", "--company", "Beta")
        full = _count(livedash.database_url)
        reader.start()
        swapped = livedash("projections", "rebuild", "--swap", timeout=300)
    finally:
        done.set()
        reader.join(timeout=60)
        daemon.terminate()
        daemon.wait(timeout=60)
    assert "swapped in" in swapped.stdout
    assert seen and min(seen) >= full, (min(seen), full)  # imports only ever add rows
    livedash("run", "--until-idle", "--idle-horizon", "0", "--csv-interval", "0", timeout=300)
    after = json.loads(livedash("projections", "verify", "--json").stdout)
    assert after["identical"] is True
    with runtime(livedash.database_url, create=False) as rt, rt.engine.connect() as conn:
        tampered = select(func.count()).where(session_stage_status.c.worker == "tampered")
        assert conn.execute(tampered).scalar_one() == 0
