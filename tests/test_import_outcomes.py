"""A broken upstream export does not look like a quiet day: an import with no data rows, or
with every row rejected, says so in `import`, `imports`, `status` and the daemon's log; and an
export in another encoding is read with `--encoding` instead of refused or garbled."""

from __future__ import annotations

import json
from pathlib import Path

from cli.errors import ExitCode
from domain.company import ImportRun
from tests.conftest import Livedash
from tests.test_csv_rows import line

HEADER = (
    "session_id,start_time,end_time,ip_address,country,language,messages_sent,sentiment,"
    "escalated,forwarded_hr,full_transcript_url,avg_response_time,tokens,tokens_eur,category,"
    "initial_msg\n"
)


def _setup(livedash: Livedash, tmp_path: Path, content: bytes) -> Path:
    export = tmp_path / "export.csv"
    export.write_bytes(content)
    livedash("init")
    livedash("company", "add", "Acme", "--csv-url", str(export))
    return export


def test_an_export_without_data_rows_is_reported_empty(livedash: Livedash, tmp_path: Path) -> None:
    export = _setup(livedash, tmp_path, HEADER.encode())
    result = livedash("import", str(export), "--company", "Acme", "--json")
    run = json.loads(result.stdout)
    assert (run["outcome"], run["rows_seen"], run["new"]) == ("empty", 0, 0)
    assert "warning: last import empty" in result.stderr

    strict = livedash("import", str(export), "--company", "Acme", "--strict", check=False)
    assert strict.code == ExitCode.REJECTED_ROWS, strict

    table = livedash("imports", "--company", "Acme").stdout
    assert "empty" in table
    status = livedash("status")
    assert "company Acme: last import empty" in status.stdout
    report = json.loads(livedash("status", "--json").stdout)
    assert [(w["company"], w["outcome"]) for w in report["import_warnings"]] == [("Acme", "empty")]


def test_an_export_whose_rows_are_all_rejected_says_so(livedash: Livedash, tmp_path: Path) -> None:
    bad = line(session_id="a", start_time="yesterday") + line(session_id="b", tokens="-1")
    export = _setup(livedash, tmp_path, bad.encode())
    result = livedash("import", str(export), "--company", "Acme", "--json", "--strict", check=False)
    assert result.code == ExitCode.REJECTED_ROWS
    run = json.loads(result.stdout)
    assert (run["outcome"], run["rows_seen"], run["rejected"]) == ("all_rejected", 2, 2)
    assert "every row rejected (2 rows)" in result.stderr
    runs = json.loads(livedash("imports", "--json").stdout)
    assert runs[0]["outcome"] == "all_rejected"
    assert "company Acme: last import had every row rejected" in livedash("status").stdout

    # A good export afterwards clears it; an unchanged source (not_modified) would not.
    export.write_text(line(session_id="a"))
    ok = json.loads(livedash("import", str(export), "--company", "Acme", "--json").stdout)
    assert ok["outcome"] == "ok"
    assert json.loads(livedash("status", "--json").stdout)["import_warnings"] == []


def test_an_empty_export_stays_visible_while_the_source_is_unchanged(
    livedash: Livedash, tmp_path: Path
) -> None:
    _setup(livedash, tmp_path, b"\n\n")
    livedash("import", "--company", "Acme")  # the company's own source
    again = json.loads(livedash("import", "--company", "Acme", "--json").stdout)
    assert again["outcome"] == "not_modified"  # the same empty content: nothing new to read
    warnings = json.loads(livedash("status", "--json").stdout)["import_warnings"]
    assert [w["outcome"] for w in warnings] == ["empty"]


def test_the_scheduled_import_logs_a_warning_for_an_empty_export(
    livedash: Livedash, tmp_path: Path
) -> None:
    _setup(livedash, tmp_path, HEADER.encode())
    result = livedash("run", "--until-idle", "--csv-interval", "3600", "--poll-interval", "0.2")
    logged = [json.loads(x) for x in result.stderr.splitlines() if x.startswith("{")]
    warnings = [x for x in logged if x["event"] == "csv_import_warning"]
    assert len(warnings) == 1, result.stderr
    assert warnings[0]["level"] == "warning" and warnings[0]["outcome"] == "empty"
    assert warnings[0]["message"] == "company Acme: last import empty (the export has no data rows)"


def test_the_daemon_refuses_a_source_over_its_cap(livedash: Livedash, tmp_path: Path) -> None:
    _setup(livedash, tmp_path, line(session_id="a").encode() * 100)
    livedash(
        "run", "--until-idle", "--csv-interval", "3600", "--poll-interval", "0.2",
        "--max-csv-bytes", "1000",
    )  # fmt: skip
    runs = json.loads(livedash("imports", "--json").stdout)
    assert runs[0]["outcome"] == "error"
    assert "larger than the limit of 1000 bytes" in runs[0]["error"]
    env_cap = Livedash(
        livedash.database_url, livedash.cwd, {**livedash.env, "LIVEDASH_MAX_CSV_BYTES": "1000"}
    )
    refused = env_cap("import", "--company", "Acme", "--force", check=False)
    assert refused.code == ExitCode.SOURCE and "limit of 1000 bytes" in refused.stderr


def test_an_import_run_stored_before_these_fields_still_loads() -> None:
    old = {
        "run_id": "7f1b1f8e-2b0c-4a35-9a38-8f7a2f2e6b11",
        "source": "x.csv",
        "started_at": "2026-10-01T10:00:00+00:00",
        "finished_at": "2026-10-01T10:00:01+00:00",
        "outcome": "ok",
        "rows_seen": 3,
    }
    run = ImportRun.model_validate(old)
    assert run.encoding is None and run.outcome == "ok"


# ----------------------------------------------------------------------------- encoding

CP1252_ROW = line(session_id="café-1", initial_msg="Één vraag – graag €5").encode("cp1252")


def test_invalid_utf8_names_the_byte_and_suggests_encoding(
    livedash: Livedash, tmp_path: Path
) -> None:
    content = line(session_id="plain").encode() + CP1252_ROW
    export = _setup(livedash, tmp_path, content)
    result = livedash("import", str(export), "--company", "Acme", check=False)
    assert result.code == ExitCode.SOURCE
    offset = content.index(b"\xe9")
    errors = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1
    assert f"not valid UTF-8: byte 0xe9 at offset {offset}, line 2" in errors[0]
    assert "--encoding" in errors[0]
    # Nothing of the file was imported: the bytes are checked before any row is written.
    assert json.loads(livedash("status", "--json").stdout)["total_sessions"] == 0


def test_encoding_auto_falls_back_to_cp1252_and_says_so(livedash: Livedash, tmp_path: Path) -> None:
    export = _setup(livedash, tmp_path, CP1252_ROW)
    auto = livedash("import", str(export), "--company", "Acme", "--encoding", "auto", "--json")
    run = json.loads(auto.stdout)
    assert (run["outcome"], run["new"], run["encoding"]) == ("ok", 1, "cp1252")
    sessions = json.loads(livedash("sessions", "--json").stdout)
    assert sessions[0]["external_id"] == "café-1"
    shown = livedash("import", str(export), "--company", "Acme", "--encoding", "auto").stdout
    assert "read as cp1252" in shown

    utf8 = tmp_path / "utf8.csv"
    utf8.write_text(line(session_id="naïve"), encoding="utf-8")
    run = json.loads(
        livedash("import", str(utf8), "--company", "Acme", "--encoding", "auto", "--json").stdout
    )
    assert run["encoding"] == "utf-8"
    explicit = livedash("import", str(export), "--company", "Acme", "--encoding", "cp1252")
    assert explicit.code == 0


def test_an_unknown_encoding_is_bad_usage(livedash: Livedash, tmp_path: Path) -> None:
    export = _setup(livedash, tmp_path, CP1252_ROW)
    result = livedash(
        "import", str(export), "--company", "Acme", "--encoding", "klingon", check=False
    )
    assert result.code == ExitCode.USAGE
    assert "unknown encoding 'klingon'" in result.stderr
