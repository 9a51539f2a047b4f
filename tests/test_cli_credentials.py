"""Issue 13 §3 through the real `livedash` command on both databases: a password never goes
into a URL (company add/update, import), the credential scope is stored on the company and
shown by `company list`, and a transcript URL with a password in an export is refused with a
reason that does not repeat it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.errors import ExitCode
from domain.company import Company, CredentialRef
from domain.errors import CompanyError
from processors.ingest.source import CsvSource, SourceError
from tests.conftest import CliResult, Livedash
from tests.factories import T0
from tests.servers import RouteServer, redirect, text

SECRET = "pw-9f3k2"


def as_json(result: CliResult) -> Any:
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout)


def refused(result: CliResult, code: int = ExitCode.USAGE) -> str:
    assert result.code == code, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def companies(livedash: Livedash) -> dict[str, Any]:
    return {c["name"]: c for c in as_json(livedash("company", "list", "--json"))}


def test_passwords_in_urls_are_refused_and_the_scope_is_stored_and_shown(
    livedash: Livedash, tmp_path: Path
) -> None:
    livedash("init")
    with_password = f"https://acme:{SECRET}@csv.example/export.csv"
    line = refused(livedash("company", "add", "Acme", "--csv-url", with_password, check=False))
    assert "--username" in line and "--password-env" in line and "***@" in line
    assert companies(livedash) == {}

    livedash(
        "company", "add", "Acme",
        "--csv-url", "https://csv.example/export.csv",
        "--username", "acme", "--password-env", "ACME_PW",
        "--auth-scope", "https://CDN.example:8443/, http://127.0.0.1:9999",
    )  # fmt: skip
    acme = companies(livedash)["Acme"]
    assert acme["auth_scope"] == ["https://cdn.example:8443", "http://127.0.0.1:9999"]
    assert acme["allow_plain_http_auth"] is False
    assert acme["csv_url"] == "https://csv.example/export.csv"

    line = refused(
        livedash(
            "company", "update", "Acme", "--csv-url", f"http://u:{SECRET}@x/y.csv", check=False
        )
    )
    assert "--password-env" in line
    bad_scope = livedash("company", "update", "Acme", "--auth-scope", "ftp://x", check=False)
    assert "not an origin" in refused(bad_scope)
    assert companies(livedash)["Acme"]["auth_scope"] == [
        "https://cdn.example:8443",
        "http://127.0.0.1:9999",
    ]

    livedash("company", "update", "Acme", "--auth-scope", "", "--allow-plain-http-auth")
    acme = companies(livedash)["Acme"]
    assert (acme["auth_scope"], acme["allow_plain_http_auth"]) == ([], True)
    livedash(
        "company", "update", "Acme", "--no-allow-plain-http-auth",
        "--auth-scope", "https://files.example", "--timezone", "Europe/Amsterdam",
    )  # fmt: skip
    acme = companies(livedash)["Acme"]
    assert (acme["auth_scope"], acme["allow_plain_http_auth"]) == (["https://files.example"], False)
    assert (acme["timezone"], acme["username"], acme["password_ref"]) == (
        "Europe/Amsterdam",
        "acme",
        "$ACME_PW",
    )
    assert "https://files.example" in livedash("company", "list").stdout

    # A URL given to `import` is never read, recorded or echoed with its password.
    line = refused(
        livedash(
            "import", f"http://acme:{SECRET}@csv.example/x.csv", "--company", "Acme", check=False
        )
    )
    assert "***@" in line
    assert as_json(livedash("imports", "--json")) == []


def test_a_transcript_url_with_a_password_is_rejected_without_repeating_it(
    livedash: Livedash, tmp_path: Path
) -> None:
    def line(external_id: str, url: str) -> str:
        return (
            f"{external_id},01.05.2025 12:11:18,01.05.2025 12:20:00,192.0.2.1,NL,dutch,2,happy,"
            f"no,no,{url},2.5,100,0.0010,Greeting,hallo\n"
        )

    export = tmp_path / "export.csv"
    export.write_text(
        line("ok-1", "https://t.example/ok-1.txt")
        + line("pw-1", f"https://mallory:{SECRET}@t.example/pw-1.txt"),
        encoding="utf-8",
    )
    livedash("init")
    livedash("company", "add", "Acme", "--csv-url", str(export))
    result = livedash("import", "--company", "Acme", "--json")
    assert SECRET not in result.stdout + result.stderr
    run = as_json(result)
    assert (run["new"], run["rejected"]) == (1, 1)
    rejection = run["rejections"][0]
    assert "user name or password" in rejection["reason"]
    assert "https://***@t.example/pw-1.txt" in rejection["raw_line"]
    for args in (("imports", "--json"), ("sessions", "--json"), ("company", "list", "--json")):
        assert SECRET not in livedash(*args).stdout


# ---------------------------------------------------------------------- the CSV reader


def test_csv_source_refuses_plain_http_credentials_to_another_machine() -> None:
    company = Company.register("Acme", "http://csv.example.invalid/export.csv", T0, username="acme")
    with pytest.raises(SourceError) as caught:
        CsvSource({}.get, attempts=1).read(company)
    assert "plain http" in str(caught.value) and "--allow-plain-http-auth" in str(caught.value)
    company.change_auth_policy(T0, allow_plain_http_auth=True)
    with pytest.raises(SourceError) as allowed:  # allowed: now it fails on DNS instead
        CsvSource({}.get, attempts=1).read(company)
    assert "plain http" not in str(allowed.value)


def test_csv_source_over_loopback_http_still_sends_the_credentials() -> None:
    with RouteServer({"/e.csv": text("a,b\n", auth=("acme", SECRET))}) as server:
        ref = CredentialRef(kind="env", name="PW")
        company = Company.register(
            "Acme", server.url("/e.csv"), T0, username="acme", password_ref=ref
        )
        got = CsvSource({"PW": SECRET}.get, attempts=1).read(company)
    assert got.body is not None and b"".join(got.body.chunks()) == b"a,b\n"


def test_a_csv_url_with_a_password_from_before_is_never_used_or_shown() -> None:
    with RouteServer({"/e.csv": text("a,b\n")}) as server:
        company = Company.register("Acme", server.url("/e.csv"), T0)
        # As loaded from events written before such URLs were refused.
        company.csv_url = f"http://acme:{SECRET}@127.0.0.1:{server.port}/e.csv"
        with pytest.raises(SourceError) as caught:
            CsvSource({}.get, attempts=1).read(company)
        assert server.total == 0
    assert SECRET not in str(caught.value) and SECRET not in (caught.value.source or "")
    assert "***@" in str(caught.value)


def test_the_daemon_sends_the_password_only_to_the_csv_host(
    livedash: Livedash, tmp_path: Path
) -> None:
    """A remote CSV behind Basic auth on one server; its rows link a transcript on the same
    server, one on a second server (another port), and one on the first that redirects to the
    second. The second server never sees the Authorization header."""

    def line(i: int, url: str) -> str:
        return (
            f"c-{i},01.10.2026 10:00:00,01.10.2026 10:05:00,192.0.2.1,NL,dutch,2,happy,"
            f"no,no,{url},2.5,100,0.0010,Sick,hallo\n"
        )

    chat = "[01.10.2026 10:00:05] User: Hallo?\n[01.10.2026 10:00:09] Assistant: Hoi.\n"
    with RouteServer() as home, RouteServer() as other:
        export = line(1, home.url("/t/1.txt")) + line(2, other.url("/t/2.txt"))
        export += line(3, home.url("/t/3.txt"))
        home.route("/export.csv", text(export, auth=("acme", SECRET), content_type="text/csv"))
        home.route("/t/1.txt", text(chat, auth=("acme", SECRET)))
        home.route("/t/3.txt", redirect(other.url("/t/3.txt")))
        other.route("/t/2.txt", text(chat))
        other.route("/t/3.txt", text(chat))
        livedash("init")
        livedash(
            "company", "add", "Acme", "--csv-url", home.url("/export.csv"),
            "--username", "acme", "--password-env", "ACME_PW",
        )  # fmt: skip
        job = Livedash(
            livedash.database_url,
            livedash.cwd,
            {**livedash.env, "ACME_PW": SECRET, "LIVEDASH_FETCH_ALLOW_HOSTS": "127.0.0.1"},
        )
        assert as_json(job("import", "--company", "Acme", "--json"))["new"] == 3
        job(
            "run", "--until-idle", "--csv-interval", "0", "--poll-interval", "0.2",
            "--stages", "TRANSCRIPT_FETCH",
        )  # fmt: skip
        seen_home = [r.headers.get("Authorization") for r in home.requests()]
        seen_other = [r.headers.get("Authorization") for r in other.requests()]
    assert len(seen_home) == 3 and all(h and h.startswith("Basic ") for h in seen_home)
    assert seen_other == [None, None]
    done = as_json(
        job("sessions", "--stage", "TRANSCRIPT_FETCH", "--status", "COMPLETED", "--json")
    )
    assert len(done) == 3


def test_the_credential_scope_is_an_event_and_old_companies_load_without_it(
    database_url: str,
) -> None:
    from tests.harness import runtime

    with runtime(database_url) as rt:
        plain = Company.register("Plain", "https://csv.example/p.csv", T0)
        assert len(plain.pending_events) == 1  # what every company registered before wrote
        rt.app.register_company(plain)
        scoped = Company.register(
            "Scoped", "https://csv.example/s.csv", T0, auth_scope=["https://cdn.example:443/"]
        )
        rt.app.register_company(scoped)
        loaded = rt.app.get_company("Plain")
        assert (loaded.auth_scope, loaded.allow_plain_http_auth) == ([], False)
        assert rt.app.get_company("Scoped").auth_scope == ["https://cdn.example"]
        assert not loaded.change_auth_policy(T0, [], False)  # no change, no event
        assert loaded.change_auth_policy(T0, None, True)
        rt.app.save(loaded)
        again = rt.app.get_company("Plain")
        assert (again.auth_scope, again.allow_plain_http_auth) == ([], True)
        with pytest.raises(CompanyError, match="user name or password"):
            again.change_settings(T0, csv_url=f"https://a:{SECRET}@csv.example/p.csv")


def test_history_of_a_session_imported_before_never_shows_its_url_password() -> None:
    from domain.history import describe
    from domain.session import Session
    from tests.factories import COMPANY, row

    url = f"https://eve:{SECRET}@t.example/s-1.txt"
    session = Session.import_row(COMPANY, row(url=url), f"https://a:{SECRET}@csv.example/e", T0)
    shown = json.dumps([e.model_dump(mode="json") for e in describe(session.collect_events())])
    assert SECRET not in shown
    assert "https://***@t.example/s-1.txt" in shown
