"""TRANSCRIPT_FETCH against a real HTTP server: every outcome classified, the SSRF guard, local
files and credentials."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from domain.company import Company, CredentialRef
from domain.payloads import FetchedTranscript
from domain.session import Session
from domain.stages import Stage, Status
from processors.net.netguard import AllowList, is_internal
from processors.stages.base import StageError
from processors.stages.fetch import (
    FetchInputs,
    FetchSettings,
    TranscriptFetchProcessor,
    resolve_url,
)
from tests.factories import COMPANY, T0, row
from tests.servers import Route, RouteServer, hang, huge, redirect, status, text, throttled

REMOTE_CSV = "https://csv.example/exports/sessions.csv"
LOOPBACK = AllowList.parse(["127.0.0.1"])
FAST = FetchSettings(timeout=1.0, connect_timeout=1.0, allow=LOOPBACK)
TRANSCRIPT = "[01.10.2026 10:00:05] User: Grüße, wann habt ihr offen?\nAssistant: 9–17 Uhr.\n"


@pytest.fixture
def server() -> Iterator[RouteServer]:
    with RouteServer() as s:
        yield s


def fetcher(settings: FetchSettings = FAST, env: dict[str, str] | None = None):
    return TranscriptFetchProcessor(settings, (env or {}).get)


@pytest.fixture
def proc() -> Iterator[TranscriptFetchProcessor]:
    p = fetcher()
    yield p
    p.close()


def inputs(
    url: str,
    csv_source: str = REMOTE_CSV,
    username: str | None = None,
    ref: CredentialRef | None = None,
) -> FetchInputs:
    return FetchInputs(raw_url=url, csv_source=csv_source, username=username, password_ref=ref)


def fails(p: TranscriptFetchProcessor, given: FetchInputs) -> StageError:
    with pytest.raises(StageError) as caught:
        p.run(given)
    return caught.value


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------- success


def test_success_stores_text_hash_size_type_and_time(server, proc) -> None:
    body = TRANSCRIPT.encode("utf-8")
    server.route("/t/1.txt", Route(body=body, content_type="text/plain; charset=utf-8"))
    before = datetime.now(UTC)
    got = proc.run(inputs(server.url("/t/1.txt")))
    assert got.text == TRANSCRIPT
    assert got.sha256 == hashlib.sha256(body).hexdigest()
    assert got.size == len(body) > len(TRANSCRIPT)  # bytes, not characters
    assert got.content_type == "text/plain; charset=utf-8"
    assert got.url == server.url("/t/1.txt")
    assert before <= got.fetched_at <= datetime.now(UTC)
    assert server.count("/t/1.txt") == 1
    assert "LiveDash-Pipeline" in server.requests("/t/1.txt")[0].headers["User-Agent"]


def test_declared_charset_is_used_and_hash_is_of_the_raw_bytes(server, proc) -> None:
    body = "Café crème".encode("latin-1")
    server.route("/l.txt", Route(body=body, content_type="text/plain; charset=iso-8859-1"))
    got = proc.run(inputs(server.url("/l.txt")))
    assert got.text == "Café crème"
    assert got.sha256 == hashlib.sha256(body).hexdigest()
    assert got.size == len(body)


def test_record_completes_the_stage_with_the_transcript() -> None:
    session = Session.import_row(COMPANY, row(), "t.csv", T0)
    attempt = session.start_stage(Stage.TRANSCRIPT_FETCH, "w", T0 + timedelta(minutes=1), T0)
    out = FetchedTranscript(
        url="https://t.example/s-1.txt",
        text="User: hi",
        sha256=hashlib.sha256(b"User: hi").hexdigest(),
        size=8,
        content_type="text/plain",
        fetched_at=T0,
    )
    fetcher().record(session, attempt, out, T0 + timedelta(seconds=1))
    state = session.stages[Stage.TRANSCRIPT_FETCH]
    assert state.status is Status.COMPLETED
    assert session.transcript == out
    assert state.metadata == {"size": 8, "sha256": out.sha256, "content_type": "text/plain"}


def test_prepare_copies_url_source_and_credential_reference() -> None:
    ref = CredentialRef(kind="env", name="ACME_PW")
    company = Company.register("Acme", REMOTE_CSV, T0, username="acme", password_ref=ref)
    session = Session.import_row(company.id, row(url="https://t.example/x.txt"), REMOTE_CSV, T0)
    assert fetcher().prepare(session, company) == inputs(
        "https://t.example/x.txt", REMOTE_CSV, "acme", ref
    )


# ------------------------------------------------------------------------ credentials


def test_basic_auth_from_env_reference(server) -> None:
    server.route("/a.txt", text("User: hi", auth=("acme", "s3cret")))
    p = fetcher(env={"ACME_PW": "s3cret"})
    ref = CredentialRef(kind="env", name="ACME_PW")
    assert (
        p.run(inputs(server.url("/a.txt"), server.url("/export.csv"), "acme", ref)).text
        == "User: hi"
    )
    assert server.requests("/a.txt")[0].headers["Authorization"].startswith("Basic ")


def test_basic_auth_from_file_reference(server, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n", encoding="utf-8")
    server.route("/a.txt", text("User: hi", auth=("acme", "s3cret")))
    ref = CredentialRef(kind="file", name=str(secret))
    got = fetcher().run(inputs(server.url("/a.txt"), server.url("/export.csv"), "acme", ref))
    assert got.text == "User: hi"


def test_wrong_password_is_401_with_a_credentials_hint(server) -> None:
    server.route("/a.txt", text("User: hi", auth=("acme", "s3cret")))
    p = fetcher(env={"ACME_PW": "wrong"})
    ref = CredentialRef(kind="env", name="ACME_PW")
    err = fails(p, inputs(server.url("/a.txt"), server.url("/export.csv"), "acme", ref))
    assert (err.error_type, err.retryable) == ("http_401", False)
    assert "credentials" in err.message and "password" in err.message


@pytest.mark.parametrize(
    "ref",
    [
        CredentialRef(kind="env", name="LIVEDASH_TEST_UNSET_PASSWORD"),
        CredentialRef(kind="file", name="/nonexistent/livedash/password"),
    ],
    ids=["env", "file"],
)
def test_missing_secret_is_a_credentials_error_before_any_request(server, proc, ref) -> None:
    server.route("/a.txt", text("User: hi"))
    err = fails(proc, inputs(server.url("/a.txt"), server.url("/export.csv"), "acme", ref))
    assert (err.error_type, err.retryable) == ("credentials", False)
    assert ref.name in err.message
    assert server.total == 0


# -------------------------------------------------------------- permanent failures


@pytest.mark.parametrize("code", [400, 404, 410])
def test_client_errors_are_not_retried(server, proc, code: int) -> None:
    server.route("/t.txt", status(code))
    err = fails(proc, inputs(server.url("/t.txt")))
    assert (err.error_type, err.retryable) == (f"http_{code}", False)
    assert str(code) in err.message


@pytest.mark.parametrize("code", [401, 403])
def test_auth_errors_are_not_retried_and_mention_credentials(server, proc, code: int) -> None:
    server.route("/t.txt", status(code))
    err = fails(proc, inputs(server.url("/t.txt")))
    assert (err.error_type, err.retryable) == (f"http_{code}", False)
    assert "credentials" in err.message


@pytest.mark.parametrize("body", [b"", b" \r\n\t\n"], ids=["empty", "blank"])
def test_empty_body_is_not_retried(server, proc, body: bytes) -> None:
    server.route("/t.txt", Route(body=body))
    err = fails(proc, inputs(server.url("/t.txt")))
    assert (err.error_type, err.retryable) == ("empty", False)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "no-content-length"])
def test_oversize_body_is_not_retried(server, declared: bool) -> None:
    server.route("/t.txt", Route(body=b"x" * 2000, content_length=declared))
    p = fetcher(FetchSettings(timeout=1.0, max_bytes=1000, allow=LOOPBACK))
    err = fails(p, inputs(server.url("/t.txt")))
    assert (err.error_type, err.retryable) == ("too_large", False)
    assert "1000" in err.message


def test_body_exactly_at_the_cap_is_accepted(server) -> None:
    server.route("/t.txt", Route(body=b"y" * 1000, content_length=False))
    p = fetcher(FetchSettings(timeout=1.0, max_bytes=1000, allow=LOOPBACK))
    assert p.run(inputs(server.url("/t.txt"))).size == 1000


def test_fifty_megabyte_stream_stops_at_the_default_cap(server) -> None:
    server.route("/big.txt", huge(50 * 1024 * 1024))
    p = fetcher(FetchSettings(timeout=5.0, allow=LOOPBACK))
    assert p.settings.max_bytes == 5 * 1024 * 1024
    err = fails(p, inputs(server.url("/big.txt")))
    assert (err.error_type, err.retryable) == ("too_large", False)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example/t.txt",
        "gopher://files.example/t.txt",
        "javascript:alert(1)",
        "data:text/plain,hello",
        "http:///no-host.txt",
    ],
)
def test_bad_urls_are_not_retried(proc, url: str) -> None:
    err = fails(proc, inputs(url))
    assert (err.error_type, err.retryable) == ("bad_url", False)


def test_redirect_to_a_file_url_is_refused(server, proc) -> None:
    server.route("/r", redirect("file:///etc/passwd"))
    err = fails(proc, inputs(server.url("/r")))
    assert (err.error_type, err.retryable) == ("bad_url", False)


# ----------------------------------------------------------------- retryable failures


@pytest.mark.parametrize("code", [408, 500, 502, 503, 504])
def test_server_errors_are_retryable(server, proc, code: int) -> None:
    server.route("/t.txt", status(code))
    err = fails(proc, inputs(server.url("/t.txt")))
    assert (err.error_type, err.retryable, err.retry_after) == (f"http_{code}", True, None)


def test_429_retry_after_seconds_is_parsed(server, proc) -> None:
    server.route("/t.txt", throttled("7"))
    err = fails(proc, inputs(server.url("/t.txt")))
    assert (err.error_type, err.retryable, err.retry_after) == ("http_429", True, 7.0)


def test_503_retry_after_http_date_is_parsed(server, proc) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    server.route("/t.txt", throttled(format_datetime(when, usegmt=True), code=503))
    err = fails(proc, inputs(server.url("/t.txt")))
    assert err.retryable and err.retry_after is not None
    assert 100 < err.retry_after <= 121


@pytest.mark.parametrize(("value", "parsed"), [(None, None), ("soon", None), ("-5", 0.0)])
def test_429_without_usable_retry_after(server, proc, value: str | None, parsed) -> None:
    server.route("/t.txt", throttled(value))
    err = fails(proc, inputs(server.url("/t.txt")))
    assert (err.error_type, err.retryable, err.retry_after) == ("http_429", True, parsed)


def test_hanging_server_times_out_retryably(server, proc) -> None:
    server.route("/t.txt", hang())
    started = time.monotonic()
    err = fails(proc, inputs(server.url("/t.txt")))
    assert (err.error_type, err.retryable) == ("timeout", True)
    assert time.monotonic() - started < 5  # bounded by the 1 s timeout, not by the server


def test_headers_later_than_the_timeout_time_out(server, proc) -> None:
    server.route("/slow.txt", Route(body=b"User: hi", delay=3))
    server.route("/ok.txt", Route(body=b"User: hi", delay=0.2))
    assert fails(proc, inputs(server.url("/slow.txt"))).error_type == "timeout"
    assert proc.run(inputs(server.url("/ok.txt"))).text == "User: hi"


def test_dripping_body_is_cut_off_at_the_overall_deadline(server, proc) -> None:
    # Each chunk arrives well within the read timeout; the whole body would take 6 s.
    server.route("/drip.txt", Route(body=b"x" * 200, chunk_size=10, drip=0.3))
    started = time.monotonic()
    err = fails(proc, inputs(server.url("/drip.txt")))
    assert (err.error_type, err.retryable) == ("timeout", True)
    assert time.monotonic() - started < 5


def test_connection_refused_is_retryable(proc) -> None:
    err = fails(proc, inputs(f"http://127.0.0.1:{closed_port()}/t.txt"))
    assert (err.error_type, err.retryable) == ("connection_error", True)


# -------------------------------------------------------------------------- redirects


def chain(server: RouteServer, hops: int) -> str:
    """/hop0 -> /hop1 -> ... -> /final, ``hops`` redirects; mixes absolute and relative targets."""
    for i in range(hops):
        target = "/final" if i == hops - 1 else f"/hop{i + 1}"
        server.route(f"/hop{i}", redirect(server.url(target) if i % 2 else target, 301 + i % 2))
    server.route("/final", text("User: arrived"))
    return server.url("/hop0")


def test_five_redirects_are_followed(server, proc) -> None:
    got = proc.run(inputs(chain(server, 5)))
    assert got.text == "User: arrived"
    assert got.url == server.url("/final")
    assert [server.count(f"/hop{i}") for i in range(5)] == [1] * 5


def test_six_redirects_are_too_many(server, proc) -> None:
    err = fails(proc, inputs(chain(server, 6)))
    assert (err.error_type, err.retryable) == ("too_many_redirects", False)
    assert server.count("/final") == 0
    assert server.total == 6


def test_redirect_loop_is_bounded(server, proc) -> None:
    server.route("/a", redirect("/b"))
    server.route("/b", redirect("/a", 307))
    err = fails(proc, inputs(server.url("/a")))
    assert (err.error_type, err.retryable) == ("too_many_redirects", False)
    assert server.count("/a") + server.count("/b") == FAST.max_redirects + 1


# ------------------------------------------------------------------------------- SSRF


def test_remote_csv_cannot_reach_loopback_without_allow_list(server) -> None:
    server.route("/x", text("User: secret"))
    p = fetcher(FetchSettings(timeout=1.0))
    err = fails(p, inputs(server.url("/x")))
    assert (err.error_type, err.retryable) == ("blocked_address", False)
    assert "LIVEDASH_FETCH_ALLOW_HOSTS" in err.message
    assert server.total == 0


@pytest.mark.parametrize("allow", [["127.0.0.1"], ["127.0.0.0/8"], ["10.0.0.0/8", "127.0.0.1/32"]])
def test_allow_list_lets_loopback_through(server, allow: list[str]) -> None:
    server.route("/x", text("User: allowed"))
    p = fetcher(FetchSettings(timeout=1.0, allow=AllowList.parse(allow)))
    assert p.run(inputs(server.url("/x"))).text == "User: allowed"
    assert server.count("/x") == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/t.txt",
        "http://192.168.1.1/t.txt",
        "http://[::1]:8080/t.txt",
        "http://0.0.0.0:8080/t.txt",
        "http://127.0.0.2/t.txt",
    ],
)
def test_internal_addresses_are_blocked_for_remote_csv(url: str) -> None:
    err = fails(fetcher(), inputs(url))  # allow list holds only 127.0.0.1
    assert (err.error_type, err.retryable) == ("blocked_address", False)


def test_every_redirect_hop_is_checked(server, proc) -> None:
    server.route("/r", redirect(f"http://127.0.0.2:{server.port}/x"))
    server.route("/meta", redirect("http://169.254.169.254/latest/meta-data/"))
    assert fails(proc, inputs(server.url("/r"))).error_type == "blocked_address"
    assert fails(proc, inputs(server.url("/meta"))).error_type == "blocked_address"
    assert server.count("/x") == 0


def test_local_csv_urls_are_not_guarded(server, tmp_path: Path) -> None:
    server.route("/x", text("User: local operator"))
    p = fetcher(FetchSettings(timeout=1.0))
    got = p.run(inputs(server.url("/x"), csv_source=str(tmp_path / "export.csv")))
    assert got.text == "User: local operator"


def test_allow_list_parsing() -> None:
    allow = AllowList.parse([" LocalHost. ", "", "10.0.0.0/8", "fd00::/8"])
    assert allow.allows("localhost") and allow.allows("LOCALHOST.")
    assert allow.allows("anything", ipaddress.ip_address("10.1.2.3"))
    assert allow.allows("anything", ipaddress.ip_address("fd00::1"))
    assert not allow.allows("anything", ipaddress.ip_address("11.0.0.1"))
    assert not allow.allows("other.example")


@pytest.mark.parametrize(
    ("address", "internal"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("172.31.255.255", True),
        ("192.168.0.10", True),
        ("169.254.169.254", True),
        ("0.0.0.0", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:169.254.169.254", True),
        ("fe80::1", True),
        ("fd00:ec2::254", True),
        ("8.8.8.8", False),
        ("172.32.0.1", False),
        ("2606:4700:4700::1111", False),
    ],
)
def test_is_internal(address: str, internal: bool) -> None:
    assert is_internal(ipaddress.ip_address(address)) is internal


# --------------------------------------------------------------- files and relative paths


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    d = tmp_path / "export"
    (d / "chats").mkdir(parents=True)
    (d / "sessions.csv").write_text("", encoding="utf-8")
    (d / "chats" / "a.txt").write_text(TRANSCRIPT, encoding="utf-8")
    (tmp_path / "secret.txt").write_text("root:x:0:0", encoding="utf-8")
    return d


def test_relative_path_resolves_against_a_local_csv(csv_dir: Path, proc) -> None:
    csv = str(csv_dir / "sessions.csv")
    assert resolve_url("chats/a.txt", csv) == csv_dir.resolve() / "chats" / "a.txt"
    got = proc.run(inputs("chats/a.txt", csv))
    data = TRANSCRIPT.encode("utf-8")
    assert got.text == TRANSCRIPT
    assert (got.sha256, got.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert got.content_type == "text/plain"


@pytest.mark.parametrize("as_uri", [False, True], ids=["path-source", "file-url-source"])
def test_file_url_inside_the_csv_directory(csv_dir: Path, proc, as_uri: bool) -> None:
    csv = csv_dir / "sessions.csv"
    source = csv.as_uri() if as_uri else str(csv)
    got = proc.run(inputs((csv_dir / "chats" / "a.txt").as_uri(), source))
    assert got.text == TRANSCRIPT
    assert got.url == (csv_dir / "chats" / "a.txt").resolve().as_uri()


@pytest.mark.parametrize(
    "raw",
    ["../secret.txt", "chats/../../secret.txt", "/etc/passwd", "file:///etc/passwd", "SIBLING"],
)
def test_paths_outside_the_csv_directory_are_refused(csv_dir: Path, proc, raw: str) -> None:
    if raw == "SIBLING":  # a file URL to a real file just outside the CSV's directory
        raw = (csv_dir.parent / "secret.txt").as_uri()
    err = fails(proc, inputs(raw, str(csv_dir / "sessions.csv")))
    assert (err.error_type, err.retryable) == ("bad_url", False)
    assert "outside" in err.message


def test_symlink_out_of_the_csv_directory_is_refused(csv_dir: Path, proc) -> None:
    (csv_dir / "chats" / "link.txt").symlink_to(csv_dir.parent / "secret.txt")
    err = fails(proc, inputs("chats/link.txt", str(csv_dir / "sessions.csv")))
    assert (err.error_type, err.retryable) == ("bad_url", False)


def test_file_url_for_a_remote_csv_is_refused(csv_dir: Path, proc) -> None:
    err = fails(proc, inputs((csv_dir / "chats" / "a.txt").as_uri(), REMOTE_CSV))
    assert (err.error_type, err.retryable) == ("bad_url", False)
    assert "local file" in err.message


def test_relative_path_for_a_remote_csv_resolves_against_its_url(server) -> None:
    assert resolve_url("chats/1.txt", REMOTE_CSV) == "https://csv.example/exports/chats/1.txt"
    assert resolve_url("../x.txt", REMOTE_CSV) == "https://csv.example/x.txt"
    server.route("/exports/chats/1.txt", text("User: relative"))
    got = fetcher().run(inputs("chats/1.txt", server.url("/exports/sessions.csv")))
    assert got.text == "User: relative"
    assert server.count("/exports/chats/1.txt") == 1


def test_local_file_failures_are_classified(csv_dir: Path) -> None:
    (csv_dir / "chats" / "empty.txt").write_text("\n", encoding="utf-8")
    (csv_dir / "chats" / "big.txt").write_bytes(b"x" * 2000)
    p = fetcher(FetchSettings(timeout=1.0, max_bytes=1000))
    csv = str(csv_dir / "sessions.csv")
    got = {
        name: (e.error_type, e.retryable)
        for name in ("missing.txt", "empty.txt", "big.txt")
        for e in [fails(p, inputs(f"chats/{name}", csv))]
    }
    assert got == {
        "missing.txt": ("not_found", False),
        "empty.txt": ("empty", False),
        "big.txt": ("too_large", False),
    }


# ----------------------------------------------------------- the test server itself


def test_server_conditional_get_answers_304() -> None:
    stamp = "Thu, 01 Oct 2026 10:00:00 GMT"
    routes = {"/e.csv": text("a,b", etag='"v1"'), "/m.csv": text("a,b", last_modified=stamp)}
    with RouteServer(routes) as s, httpx.Client(timeout=2) as c:
        first = c.get(s.url("/e.csv"))
        assert (first.status_code, first.headers["etag"], first.text) == (200, '"v1"', "a,b")
        again = c.get(s.url("/e.csv"), headers={"If-None-Match": '"v1"'})
        assert (again.status_code, again.content) == (304, b"")
        assert c.get(s.url("/e.csv"), headers={"If-None-Match": '"v0"'}).status_code == 200
        assert c.get(s.url("/m.csv"), headers={"If-Modified-Since": stamp}).status_code == 304
        assert [s.count("/e.csv"), s.count("/m.csv"), s.count("/nope")] == [3, 1, 0]
        assert c.get(s.url("/nope")).status_code == 404
        assert s.count("/nope") == 1


def test_server_stops_promptly_with_a_client_still_hanging() -> None:
    s = RouteServer({"/hang": hang()}).start()
    errors: list[BaseException] = []

    def client() -> None:
        try:
            httpx.get(s.url("/hang"), timeout=30)
        except httpx.HTTPError as e:
            errors.append(e)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while s.count("/hang") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.count("/hang") == 1
    started = time.monotonic()
    s.stop()
    t.join(5)
    assert not t.is_alive() and time.monotonic() - started < 5
    assert len(errors) == 1  # the hanging request was dropped, not answered
