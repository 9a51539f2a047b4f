"""End-to-end: the real `livedash` command in a subprocess, on a SQLite file and on PostgreSQL.

Each command costs about a second (a fresh interpreter), so the stories are few and long:
import and re-import, processing with local transcripts and operator retries, and the errors
a user or a script can run into.
"""

from __future__ import annotations

import csv
import getpass
import json
import os
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cli.errors import ExitCode
from tests.conftest import LIVEDASH, REPO, SAMPLE_CSV, CliResult, Livedash

STAGES = (
    "CSV_IMPORT",
    "TRANSCRIPT_FETCH",
    "SESSION_CREATION",
    "AI_ANALYSIS",
    "QUESTION_EXTRACTION",
)
STATUSES = ("PENDING", "IN_PROGRESS", "COMPLETED", "FAILED", "SKIPPED")
# --poll-interval only shortens the waits between the stages of one session.
RUN = (
    "run",
    "--until-idle",
    "--idle-horizon",
    "0",
    "--csv-interval",
    "0",
    "--poll-interval",
    "0.1",
)

TRANSCRIPT = """\
[01.05.2025 12:11:18] User: Hoi, ik ben ziek. Wie moet ik bellen?
[01.05.2025 12:11:20] Assistant: Wat vervelend! Meld je ziek bij je leidinggevende.
Je kunt ook de HR-lijn bellen.
[01.05.2025 12:13:40] User: Moet ik een doktersbriefje hebben?
[01.05.2025 12:13:42] Assistant: Nee, pas vanaf de derde ziektedag.
"""


# ------------------------------------------------------------------------------- helpers


@pytest.fixture
def sqlite_livedash(tmp_path: Path) -> Livedash:
    """The command on a SQLite file only, for what does not depend on the database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
    env["PYTHONPATH"] = str(REPO)
    env["COLUMNS"] = "200"
    return Livedash(f"sqlite:///{tmp_path / 'livedash.db'}", tmp_path, env)


def as_json(result: CliResult) -> Any:
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def midpoint(a: str, b: str) -> str:
    start, end = ts(a), ts(b)
    assert start < end, (a, b)
    return (start + (end - start) / 2).isoformat()


def sample_rows() -> list[list[str]]:
    with SAMPLE_CSV.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    assert len(rows) == 6 and all(len(r) == 16 for r in rows)
    return rows


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return path


def row(
    external_id: str, url: str, messages: str = "2", start: str = "01.05.2025 12:11:18"
) -> list[str]:
    return [
        external_id,
        start,
        "01.05.2025 12:59:00",
        "31.176.221.57",
        "NL",
        "dutch",
        messages,
        "happy",
        "no",
        "no",
        url,
        "3.458",
        "56027",
        "0.0083",
        "Onboarding",
        "Hoi",
    ]


def counts(status: dict[str, Any]) -> dict[str, dict[str, int]]:
    """The stage × status table, checked to be complete (every stage, every status)."""
    stages = status["stages"]
    assert set(stages) == set(STAGES)
    for stage in STAGES:
        assert set(stages[stage]) == set(STATUSES), stage
        assert sum(stages[stage].values()) == status["total_sessions"], stage
    return stages


def table(**expected: dict[str, int]) -> dict[str, dict[str, int]]:
    """A full stage × status table from the non-zero cells."""
    return {stage: {s: expected.get(stage, {}).get(s, 0) for s in STATUSES} for stage in STAGES}


def stable(status: dict[str, Any]) -> dict[str, Any]:
    """`status --json` without what changes by itself as time passes."""
    out = dict(status)
    out.pop("generated_at")
    if out["oldest_pending"] is not None:
        out["oldest_pending"] = {
            k: v for k, v in out["oldest_pending"].items() if k != "age_seconds"
        }
    return out


def assert_error(result: CliResult, code: int, *fragments: str, hint: bool = True) -> str:
    """One `error:` line (with the fragments), a `hint:` line, the exit code, no traceback."""
    assert result.code == code, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "no message on stderr"
    assert lines[0].startswith("error:"), lines
    assert sum(line.startswith("error:") for line in lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    if hint:
        assert len(lines) == 2 and lines[1].startswith("hint:"), lines
    else:
        assert len(lines) == 1, lines
    return lines[0]


def stage_states(history_at: dict[str, Any]) -> dict[str, str]:
    return {stage: s["status"] for stage, s in history_at["stages"].items()}


# ------------------------------------------------------------------------- import story


def test_import_reimport_change_reports_and_projections(livedash: Livedash, tmp_path: Path) -> None:
    sample = sample_rows()
    ids = [r[0] for r in sample]

    assert "ready" in livedash("init").stdout
    assert "ready" in livedash("init").stdout  # idempotent
    added = as_json(
        livedash(
            "company",
            "add",
            "Jumbo",
            "--csv-url",
            str(SAMPLE_CSV),
            "--timezone",
            "Europe/Amsterdam",
            "--json",
        )
    )
    assert (added["name"], added["status"], added["timezone"]) == (
        "Jumbo",
        "ACTIVE",
        "Europe/Amsterdam",
    )

    # First import: six new sessions.
    first = livedash("import", str(SAMPLE_CSV), "--company", "Jumbo")
    assert "rows seen 6" in first.stdout
    assert "new 6" in first.stdout
    assert "changed 0" in first.stdout
    assert "unchanged 0" in first.stdout
    assert "rejected 0" in first.stdout
    runs = as_json(livedash("imports", "--json"))
    assert len(runs) == 1
    assert {k: runs[0][k] for k in ("company", "outcome", "rows_seen", "new", "changed")} == {
        "company": "Jumbo",
        "outcome": "ok",
        "rows_seen": 6,
        "new": 6,
        "changed": 0,
    }
    assert (runs[0]["unchanged"], runs[0]["rejected"], runs[0]["rejections"]) == (0, 0, [])
    assert runs[0]["source"] == str(SAMPLE_CSV.resolve())

    changed_id = ids[2]  # ef6b43f6…, messages_sent 8
    before = as_json(livedash("history", changed_id, "--json"))
    assert [e["event"] for e in before["events"]] == ["Imported"]
    # Times in the CSV are Amsterdam wall times (CEST in May).
    assert before["events"][0]["data"]["start_time"] == "2025-05-01T12:11:18+02:00"

    # The same file again: nothing new, nothing changed, no events; --strict is happy.
    again = livedash("import", str(SAMPLE_CSV), "--company", "Jumbo", "--strict")
    assert "rows seen 6" in again.stdout
    assert "new 0" in again.stdout
    assert "changed 0" in again.stdout
    assert "unchanged 6" in again.stdout
    assert as_json(livedash("history", changed_id, "--json")) == before

    # A modified export: one changed row, one new row, two bad rows.
    modified = [list(r) for r in sample]
    assert modified[2][6] == "8"
    modified[2][6] = "9"
    new_id = "0b1c2d3e-0000-4000-8000-000000000007"
    modified.append([new_id, *sample[0][1:]])
    bad_date = [f"{ids[1]}-x", "31.02.2025 10:00:00", *sample[1][2:]]
    modified.append(bad_date)
    modified.append(["short-row", *sample[1][1:15]])
    mod_csv = write_csv(tmp_path / "modified.csv", modified)
    result = livedash("import", str(mod_csv), "--company", "Jumbo")
    out = result.stdout
    assert "rows seen 9" in out
    assert "new 1" in out
    assert "changed 1" in out
    assert "unchanged 5" in out
    assert "rejected 2" in out
    assert "row 8:" in out and "impossible date 31.02.2025" in out
    assert "row 9:" in out and "expected 16 columns, found 15" in out

    strict = livedash("import", str(mod_csv), "--company", "Jumbo", "--strict", check=False)
    assert strict.code == ExitCode.REJECTED_ROWS == 5
    assert "Traceback" not in strict.stderr
    assert "unchanged 7" in strict.stdout and "rejected 2" in strict.stdout

    runs = as_json(livedash("imports", "--company", "Jumbo", "--json"))
    assert [(r["new"], r["changed"], r["unchanged"], r["rejected"]) for r in runs] == [
        (0, 0, 7, 2),  # --strict, newest first
        (1, 1, 5, 2),
        (0, 0, 6, 0),
        (6, 0, 0, 0),
    ]
    assert runs[1]["source"] == str(mod_csv.resolve())
    rejections = {r["row_number"]: r for r in runs[1]["rejections"]}
    assert set(rejections) == {8, 9}
    assert "start_time" in rejections[8]["reason"]
    assert "impossible date 31.02.2025" in rejections[8]["reason"]
    assert rejections[8]["raw_line"].startswith(f"{ids[1]}-x,31.02.2025 10:00:00,")
    assert rejections[9]["reason"] == "expected 16 columns, found 15"
    assert rejections[9]["raw_line"].startswith("short-row,")

    companies = as_json(livedash("company", "list", "--json"))
    assert len(companies) == 1
    assert companies[0]["sessions"] == 7
    assert companies[0]["last_import"]["run_id"] == runs[0]["run_id"]

    # status --json: every stage × every status; rejected rows made no session.
    status = as_json(livedash("status", "--json"))
    assert status["total_sessions"] == 7
    assert counts(status) == table(
        CSV_IMPORT={"COMPLETED": 7},
        TRANSCRIPT_FETCH={"PENDING": 7},
        SESSION_CREATION={"PENDING": 7},
        AI_ANALYSIS={"PENDING": 7},
        QUESTION_EXTRACTION={"PENDING": 7},
    )
    assert status["waiting_companies"] == [] and status["recent_failures"] == []

    # sessions --json: the filters filter.
    pending = as_json(
        livedash(
            "sessions", "--stage", "TRANSCRIPT_FETCH", "--status", "PENDING", "--company", "Jumbo",
            "--json",
        )
    )  # fmt: skip
    assert sorted(s["external_id"] for s in pending) == sorted([*ids, new_id])
    assert {(s["stage"], s["status"]) for s in pending} == {("TRANSCRIPT_FETCH", "PENDING")}
    assert {s["company_id"] for s in pending} == {added["company_id"]}
    limited = as_json(
        livedash(
            "sessions", "--stage", "csv-import", "--status", "completed", "--limit", "3", "--json"
        )
    )
    assert len(limited) == 3
    assert {(s["stage"], s["status"]) for s in limited} == {("CSV_IMPORT", "COMPLETED")}

    # history: by external id and by internal id, every event in order with timestamps.
    by_external = as_json(livedash("history", changed_id, "--json"))
    events = by_external["events"]
    assert [e["event"] for e in events] == ["Imported", "SourceRowChanged"]
    assert [e["version"] for e in events] == [1, 2]
    assert ts(events[0]["timestamp"]) < ts(events[1]["timestamp"])
    assert events[0] == before["events"][0]
    assert events[1]["data"]["source"] == str(mod_csv.resolve())
    assert events[0]["data"]["row_fingerprint"] != events[1]["data"]["row_fingerprint"]
    session_id = by_external["session_id"]
    assert (by_external["external_id"], by_external["company"]) == (changed_id, "Jumbo")
    assert as_json(livedash("history", session_id, "--json")) == by_external
    text = livedash("history", session_id).stdout
    assert changed_id in text and "Imported" in text and "SourceRowChanged" in text
    assert text.index("Imported") < text.index("SourceRowChanged")

    # history --at: between the import and the change the stage still shows the import.
    imported_at, changed_at = events[0]["timestamp"], events[1]["timestamp"]
    then = as_json(
        livedash("history", changed_id, "--at", midpoint(imported_at, changed_at), "--json")
    )
    now = as_json(livedash("history", session_id, "--at", changed_at, "--json"))
    assert set(then["stages"]) == set(STAGES)
    assert stage_states(then) == {"CSV_IMPORT": "COMPLETED"} | dict.fromkeys(STAGES[1:], "PENDING")
    fetch_then, fetch_now = then["stages"]["TRANSCRIPT_FETCH"], now["stages"]["TRANSCRIPT_FETCH"]
    assert ts(fetch_then["updated_at"]) == ts(imported_at)
    assert ts(fetch_now["updated_at"]) == ts(changed_at)
    assert fetch_then["note"] != fetch_now["note"]
    too_early = livedash("history", changed_id, "--at", "2000-01-01T00:00:00Z", check=False)
    assert_error(too_early, ExitCode.FAILED, "did not exist", hint=False)

    # Projections: caught up; a rebuild replays the log into the same answers.
    lags = as_json(livedash("projections", "status", "--json"))
    assert {"session_status", "companies"} <= {lag["name"] for lag in lags}
    assert all(lag["events_behind"] == 0 for lag in lags)
    before_rebuild = stable(status)
    rebuilt = livedash("projections", "rebuild").stdout
    assert "rebuilt session_status" in rebuilt and "rebuilt companies" in rebuilt
    assert stable(as_json(livedash("status", "--json"))) == before_rebuild
    assert as_json(livedash("company", "list", "--json")) == companies


# ---------------------------------------------------------------------- processing story


def test_run_failures_retry_suspend_and_history_at(livedash: Livedash, tmp_path: Path) -> None:
    src = tmp_path / "export"
    (src / "transcripts").mkdir(parents=True)
    (src / "transcripts" / "ok.txt").write_text(TRANSCRIPT, encoding="utf-8")
    rows = [
        row("s-ok", "transcripts/ok.txt"),
        row("s-miss1", "transcripts/miss1.txt", start="01.05.2025 12:20:00"),
        row("s-miss2", "transcripts/miss2.txt", start="01.05.2025 12:30:00"),
        row("s-nourl", "", start="01.05.2025 12:40:00"),
    ]
    export = write_csv(src / "export.csv", rows)

    livedash("init")
    livedash(
        "company", "add", "Acme", "--csv-url", str(export), "--timezone", "Europe/Amsterdam"
    )  # fmt: skip
    assert "new 4" in livedash("import", str(export), "--company", "Acme").stdout

    ran = livedash(*RUN)
    assert "Traceback" not in ran.stderr
    status = as_json(livedash("status", "--json"))
    assert status["total_sessions"] == 4
    after_run = table(
        CSV_IMPORT={"COMPLETED": 4},
        TRANSCRIPT_FETCH={"COMPLETED": 1, "FAILED": 2, "SKIPPED": 1},
        SESSION_CREATION={"PENDING": 2, "COMPLETED": 2},
        AI_ANALYSIS={"PENDING": 2, "COMPLETED": 1, "SKIPPED": 1},
        QUESTION_EXTRACTION={"PENDING": 2, "COMPLETED": 1, "SKIPPED": 1},
    )
    assert counts(status) == after_run
    assert status["failed_total"] == 2
    assert status["needs_processing"]["TRANSCRIPT_FETCH"]["failed_dead"] == 2

    # The transcript that exists was fetched and parsed into its four messages.
    ok_history = as_json(livedash("history", "s-ok", "--json"))
    ok_events = [e["event"] for e in ok_history["events"]]
    for event in ("TranscriptFetched", "SessionParsed", "AnalysisRecorded", "QuestionsExtracted"):
        assert event in ok_events
    assert ok_events.index("TranscriptFetched") < ok_events.index("SessionParsed")
    parsed = next(e for e in ok_history["events"] if e["event"] == "SessionParsed")
    assert parsed["data"]["messages"] == 4
    fetched = next(e for e in ok_history["events"] if e["event"] == "TranscriptFetched")
    assert fetched["data"]["url"] == (src / "transcripts" / "ok.txt").resolve().as_uri()

    # The row without a URL skipped the fetch.
    skipped = as_json(
        livedash("sessions", "--stage", "TRANSCRIPT_FETCH", "--status", "SKIPPED", "--json")
    )
    assert [s["external_id"] for s in skipped] == ["s-nourl"]

    # The missing files: FAILED, not_found, not retried.
    failures = as_json(
        livedash("failed", "--stage", "TRANSCRIPT_FETCH", "--company", "Acme", "--json")
    )
    assert sorted(f["external_id"] for f in failures) == ["s-miss1", "s-miss2"]
    for f in failures:
        assert (f["stage"], f["attempt"], f["error_type"]) == ("TRANSCRIPT_FETCH", 1, "not_found")
        assert f["will_retry"] is False and f["retry_at"] is None
        assert (f["retry_count"], f["attempts_run"], f["retryable"]) == (1, 1, False)
        assert f"transcripts/{f['external_id'][2:]}.txt" in f["error_message"]

    # retry one session: StageReset with reason and actor, stage back to PENDING.
    retried = livedash("--actor", "alice", "retry", "s-miss1", "--reason", "file restored")
    assert "reset 1 session" in retried.stdout
    miss1 = as_json(livedash("history", "s-miss1", "--json"))["events"]
    assert [e["event"] for e in miss1] == ["Imported", "StageStarted", "StageFailed", "StageReset"]
    assert miss1[2]["error_type"] == "not_found" and miss1[2]["retryable"] is False
    reset = miss1[-1]
    assert (reset["stage"], reset["reason"], reset["actor"]) == (
        "TRANSCRIPT_FETCH",
        "file restored",
        "alice",
    )
    assert (reset["status_before"], reset["status_after"]) == ("FAILED", "PENDING")
    stages = counts(as_json(livedash("status", "--json")))
    assert stages["TRANSCRIPT_FETCH"] == {
        "PENDING": 1, "IN_PROGRESS": 0, "COMPLETED": 1, "FAILED": 1, "SKIPPED": 1
    }  # fmt: skip

    # retry --stage --all-failed: the other one, actor from the OS user.
    bulk = as_json(
        livedash(
            "retry", "--stage", "TRANSCRIPT_FETCH", "--all-failed", "--json", "--reason", "bulk"
        )
    )
    assert [r["external_id"] for r in bulk["reset"]] == ["s-miss2"]
    assert (bulk["refused"], bulk["actor"], bulk["reason"]) == ([], getpass.getuser(), "bulk")
    miss2_reset = as_json(livedash("history", "s-miss2", "--json"))["events"][-1]
    assert (miss2_reset["event"], miss2_reset["actor"], miss2_reset["reason"]) == (
        "StageReset",
        getpass.getuser(),
        "bulk",
    )

    # Suspended: status says who waits and why; the daemon leaves the company alone.
    (src / "transcripts" / "miss1.txt").write_text(TRANSCRIPT, encoding="utf-8")
    assert (
        "SUSPENDED" in livedash("company", "suspend", "Acme", "--reason", "contract paused").stdout
    )
    suspended = as_json(livedash("status", "--json"))
    assert counts(suspended)["TRANSCRIPT_FETCH"] == {
        "PENDING": 2, "IN_PROGRESS": 0, "COMPLETED": 1, "FAILED": 0, "SKIPPED": 1
    }  # fmt: skip
    assert suspended["failed_total"] == 0
    assert len(suspended["waiting_companies"]) == 1
    waiting = suspended["waiting_companies"][0]
    assert (waiting["company"], waiting["status"], waiting["waiting_sessions"]) == (
        "Acme",
        "SUSPENDED",
        2,
    )
    assert "SUSPENDED" in waiting["reason"] and "contract paused" in waiting["reason"]
    assert "contract paused" in livedash("status").stdout
    livedash(*RUN)
    assert counts(as_json(livedash("status", "--json"))) == counts(suspended)
    assert as_json(livedash("history", "s-miss1", "--json"))["events"] == miss1

    # Active again: the restored file is fetched, the still missing one fails again.
    assert "ACTIVE" in livedash("company", "activate", "Acme").stdout
    livedash(*RUN)
    status = as_json(livedash("status", "--json"))
    assert status["waiting_companies"] == []
    assert counts(status) == table(
        CSV_IMPORT={"COMPLETED": 4},
        TRANSCRIPT_FETCH={"COMPLETED": 2, "FAILED": 1, "SKIPPED": 1},
        SESSION_CREATION={"PENDING": 1, "COMPLETED": 3},
        AI_ANALYSIS={"PENDING": 1, "COMPLETED": 2, "SKIPPED": 1},
        QUESTION_EXTRACTION={"PENDING": 1, "COMPLETED": 2, "SKIPPED": 1},
    )
    failures = as_json(livedash("failed", "--json"))
    assert [(f["external_id"], f["error_type"], f["will_retry"]) for f in failures] == [
        ("s-miss2", "not_found", False)
    ]
    assert failures[0]["attempt"] == failures[0]["attempts_run"] == 2

    # A changed row reopens a finished session; --at shows it as it was before the change.
    rows[0][6] = "3"
    write_csv(export, rows)
    changed = livedash("import", str(export), "--company", "Acme").stdout
    assert "changed 1" in changed and "unchanged 3" in changed
    ok_events = as_json(livedash("history", "s-ok", "--json"))["events"]
    assert ok_events[-1]["event"] == "SourceRowChanged"
    last_before, change = ok_events[-2]["timestamp"], ok_events[-1]["timestamp"]
    then = as_json(livedash("history", "s-ok", "--at", midpoint(last_before, change), "--json"))
    assert stage_states(then) == dict.fromkeys(STAGES, "COMPLETED")
    now = as_json(livedash("history", "s-ok", "--at", change, "--json"))
    assert stage_states(now) == {"CSV_IMPORT": "COMPLETED"} | dict.fromkeys(STAGES[1:], "PENDING")


# ---------------------------------------------------------------------------------- errors


def test_errors_are_one_line_with_a_hint_and_an_exit_code(
    livedash: Livedash, tmp_path: Path
) -> None:
    # Not initialised yet (SQLite: no file; PostgreSQL: an empty database).
    not_init = livedash("status", check=False)
    assert_error(not_init, ExitCode.DATABASE)
    assert "livedash init" in not_init.stderr

    livedash("init")
    export = write_csv(tmp_path / "e.csv", [row("e-1", "")])
    livedash("company", "add", "Acme", "--csv-url", str(export))
    for args in (
        ("status", "--company", "Nope"),
        ("import", str(export), "--company", "Nope"),
        ("sessions", "--company", "Nope", "--json"),
    ):
        assert_error(livedash(*args, check=False), ExitCode.FAILED, "unknown company", "Nope")
    for args in (("history", "no-such-session"), ("retry", "no-such-session")):
        assert_error(
            livedash(*args, check=False), ExitCode.FAILED, "unknown session", "no-such-session"
        )
    assert_error(
        livedash("company", "add", "acme", "--csv-url", str(export), check=False),
        ExitCode.FAILED,
        "already exists",
        hint=False,
    )
    gone = livedash("import", str(tmp_path / "gone.csv"), "--company", "Acme", check=False)
    assert_error(gone, ExitCode.SOURCE, "gone.csv", hint=False)
    # None of that imported anything; only the failed read is recorded as a run.
    assert as_json(livedash("status", "--json"))["total_sessions"] == 0
    runs = as_json(livedash("imports", "--json"))
    assert [(r["outcome"], r["rows_seen"]) for r in runs] == [("error", 0)]
    assert "gone.csv" in runs[0]["error"]


def test_bad_urls_and_usage_errors(sqlite_livedash: Livedash, tmp_path: Path) -> None:
    """Refused before any database is opened, so one database kind is enough."""
    livedash = sqlite_livedash
    assert_error(
        livedash("--database-url", "mysql://u@h/db", "status", check=False),
        ExitCode.USAGE,
        "mysql",
    )
    missing = tmp_path / "nowhere" / "none.db"
    not_init = livedash("--database-url", f"sqlite:///{missing}", "status", check=False)
    assert_error(not_init, ExitCode.DATABASE, str(missing))
    assert "livedash init" in not_init.stderr
    assert not missing.exists()
    assert_error(
        livedash("--database-url", "postgresql://postgres@127.0.0.1:1/nope", "status", check=False),
        ExitCode.DATABASE,
        "cannot reach",
    )
    no_stage = livedash("retry", "--all-failed", check=False)
    assert no_stage.code in (ExitCode.FAILED, ExitCode.USAGE)
    assert_error(no_stage, no_stage.code, "--all-failed needs --stage")
    assert_error(
        livedash("import", str(SAMPLE_CSV), check=False), ExitCode.USAGE, "--company is required"
    )
    assert_error(
        livedash("history", "some-session", "--at", "yesterday", check=False),
        ExitCode.USAGE,  # bad usage (2), like every other unreadable option
        "--at",
    )
    # None of these created the default database file either.
    assert not (tmp_path / "livedash.db").exists()


# ------------------------------------------- regressions: bugs found by these tests, fixed


def test_unknown_company_on_status_change_has_a_hint(sqlite_livedash: Livedash) -> None:
    livedash = sqlite_livedash
    livedash("init")
    assert_error(livedash("company", "suspend", "Nope", check=False), ExitCode.FAILED, "Nope")


def test_error_text_is_not_rich_markup(sqlite_livedash: Livedash) -> None:
    livedash = sqlite_livedash
    livedash("init")
    result = livedash("status", "--company", "[/x]", check=False)
    assert_error(result, ExitCode.FAILED, "unknown company", "[/x]")


def test_error_stays_one_line_without_a_terminal_width(sqlite_livedash: Livedash) -> None:
    env = {k: v for k, v in sqlite_livedash.env.items() if k != "COLUMNS"}
    plain = Livedash(sqlite_livedash.database_url, sqlite_livedash.cwd, env)
    result = plain(
        "--database-url", "postgresql://postgres@127.0.0.1:1/nope", "status", check=False
    )
    assert_error(result, ExitCode.DATABASE, "cannot reach", "Connection refused")


def test_csv_text_is_not_rich_markup_in_reports(sqlite_livedash: Livedash, tmp_path: Path) -> None:
    livedash = sqlite_livedash
    export = write_csv(tmp_path / "e.csv", [row("[/]ok", ""), row("[/]bad", "", messages="[/]")])
    livedash("init")
    livedash("company", "add", "Acme", "--csv-url", str(export))
    imported = livedash("import", str(export), "--company", "Acme", check=False)
    assert "Traceback" not in imported.stderr
    assert imported.code == 0 and "not a number '[/]'" in imported.stdout
    listed = livedash("sessions", check=False)
    assert listed.code == 0 and "[/]ok" in listed.stdout, listed.stderr


def test_tables_are_not_cut_when_piped(sqlite_livedash: Livedash, tmp_path: Path) -> None:
    """Piped into a file or `grep` (no terminal, no COLUMNS), every value is printed in full:
    Rich's 80-column default cut the stage names of `history` to `CS…` and `PE…`."""
    env = {k: v for k, v in sqlite_livedash.env.items() if k != "COLUMNS"}
    piped = Livedash(sqlite_livedash.database_url, sqlite_livedash.cwd, env)
    url = "https://transcripts.example.invalid/a/rather/long/path/to/one/transcript-0001.txt"
    export = write_csv(tmp_path / "e.csv", [row("session-with-a-long-external-id-0001", url)])
    piped("init")
    piped("company", "add", "A Company With A Long Name", "--csv-url", str(export))
    piped("import", str(export), "--company", "A Company With A Long Name")
    session = "session-with-a-long-external-id-0001"
    events = piped("history", session).stdout
    assert "…" not in events, events
    for name in ("Imported", "CSV_IMPORT", "COMPLETED", session, "A Company With A Long Name"):
        assert name in events, (name, events)
    stages = piped("history", session, "--at", "2099-01-01T00:00:00Z").stdout
    assert "…" not in stages, stages
    for name in ("CSV_IMPORT", "TRANSCRIPT_FETCH", "QUESTION_EXTRACTION", "PENDING", "COMPLETED"):
        assert name in stages, (name, stages)
    listed = piped("sessions").stdout
    assert "…" not in listed and session in listed, listed


def test_reprocess_model_records_who_and_why_on_the_company(
    livedash: Livedash, tmp_path: Path
) -> None:
    """`reprocess --model` changes the company's model; like a status change, the change says
    who made it and why, and `company history` shows both."""
    export = write_csv(tmp_path / "e.csv", [row("s-1", "")])
    livedash("init")
    livedash("company", "add", "Acme", "--csv-url", str(export))
    livedash("company", "suspend", "Acme", "--reason", "invoice unpaid")
    livedash("company", "activate", "Acme")
    out = as_json(
        livedash("reprocess", "--company", "Acme", "--model", "gpt-4.1-mini",
                 "--reason", "better model", "--json")
    )  # fmt: skip
    assert out["model"] == "gpt-4.1-mini"
    events = as_json(livedash("company", "history", "Acme", "--json"))["events"]
    assert [e["event"] for e in events] == [
        "Registered", "StatusChanged", "StatusChanged", "SettingsChanged",
    ]  # fmt: skip
    suspended, changed = events[1], events[3]
    assert suspended["reason"] == "invoice unpaid" and suspended["actor"]
    assert changed["reason"] == "better model"
    assert changed["actor"] == suspended["actor"]
    assert changed["changes"] == {"ai_model": "- -> gpt-4.1-mini"}
    text = livedash("company", "history", "Acme").stdout
    assert "better model" in text and "invoice unpaid" in text and "SettingsChanged" in text
    last = as_json(livedash("company", "history", "Acme", "--limit", "1", "--json"))
    assert last["events"] == [changed]


def test_the_demo_runs_offline_and_reads_well_in_a_log(tmp_path: Path) -> None:
    """`make demo`'s command, piped as in a log: it finishes, and no line is a screen-wide
    rule thousands of characters long (piped consoles are wide so tables are never cut)."""
    db = tmp_path / "demo.db"
    done = subprocess.run(
        [*LIVEDASH, "demo", "--db", str(db)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "COLUMNS"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "── history of " in done.stdout and "── what failed and why ──" in done.stdout
    assert f"livedash serve --database-url sqlite:///{db}" in done.stdout  # the page's way in
    assert max(len(line) for line in done.stdout.splitlines()) < 400
    assert "…" not in done.stdout
