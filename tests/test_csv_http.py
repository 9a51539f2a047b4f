"""A company's CSV source over HTTP, on the pooled client the transcript fetcher uses: where the
password goes, redirects, the size cap, timeouts and the statuses worth another try."""

from __future__ import annotations

import gzip
import time

import pytest

from domain.company import Company, CredentialRef
from processors.ingest.source import MAX_REDIRECTS, CsvSource, SourceData, SourceError
from tests.factories import T0
from tests.servers import Route, RouteServer, hang, redirect, status, text, throttled

SECRET = "pw-7hq2x"
AUTH = ("acme", SECRET)
CSV = "session_id,text\na,hello\n"


def company(url: str, username: str | None = None) -> Company:
    ref = CredentialRef(kind="env", name="PW") if username else None
    return Company.register("Acme", url, T0, username=username, password_ref=ref)


def read(url: str, username: str | None = None, **settings: float) -> SourceData:
    source = CsvSource({"PW": SECRET}.get, backoff=0.01, **settings)  # type: ignore[arg-type]
    try:
        return source.read(company(url, username))
    finally:
        source.close()


def content(data: SourceData) -> bytes:
    assert data.body is not None
    try:
        return b"".join(data.body.chunks())
    finally:
        data.close()


# ------------------------------------------------------------------ credentials


def test_the_password_goes_to_the_source_and_along_a_redirect_on_its_origin() -> None:
    routes = {"/old.csv": redirect("/e.csv"), "/e.csv": text(CSV, auth=AUTH)}
    with RouteServer(routes) as server:
        assert content(read(server.url("/old.csv"), "acme")) == CSV.encode()
        assert [r.headers.get("Authorization", "") != "" for r in server.requests()] == [
            True,
            True,
        ]
        agent = server.requests()[0].headers["User-Agent"]
    assert agent == "LiveDash-Pipeline/0.1 (csv import)"


def test_the_password_never_follows_a_redirect_to_another_origin() -> None:
    with RouteServer({"/e.csv": text(CSV)}) as other:
        with RouteServer({"/e.csv": redirect(other.url("/e.csv"))}) as home:
            assert content(read(home.url("/e.csv"), "acme")) == CSV.encode()
            assert "Authorization" in home.requests()[0].headers
        assert other.count("/e.csv") == 1
        assert "Authorization" not in other.requests()[0].headers


def test_a_conditional_get_gets_304_and_no_body() -> None:
    route = text(CSV, etag='"v1"')
    with RouteServer({"/e.csv": route}) as server:
        source = CsvSource({}.get, attempts=1)
        try:
            acme = company(server.url("/e.csv"))
            first = source.read(acme)
            assert first.etag == '"v1"' and content(first) == CSV.encode()
            acme.etag = first.etag
            again = source.read(acme)
        finally:
            source.close()
        assert again.not_modified and again.http_status == 304
        assert server.requests()[1].headers["If-None-Match"] == '"v1"'


# -------------------------------------------------------------------- redirects


def test_a_chain_of_redirects_is_followed_up_to_the_limit() -> None:
    hops = {f"/{i}": redirect(f"/{i + 1}") for i in range(MAX_REDIRECTS)}
    with RouteServer({**hops, f"/{MAX_REDIRECTS}": text(CSV)}) as server:
        assert content(read(server.url("/0"))) == CSV.encode()


def test_one_redirect_too_many_is_refused_and_not_retried() -> None:
    hops = {f"/{i}": redirect(f"/{i + 1}") for i in range(MAX_REDIRECTS + 1)}
    with RouteServer({**hops, f"/{MAX_REDIRECTS + 1}": text(CSV)}) as server:
        with pytest.raises(SourceError, match=f"more than {MAX_REDIRECTS} redirects"):
            read(server.url("/0"))
        assert server.count("/0") == 1  # a refusal, not a failure worth another try
        assert server.count(f"/{MAX_REDIRECTS + 1}") == 0


def test_a_redirect_to_another_scheme_is_refused() -> None:
    with RouteServer({"/e.csv": redirect("file:///etc/passwd")}) as server:
        with pytest.raises(SourceError, match="redirect to 'file:///etc/passwd' refused"):
            read(server.url("/e.csv"))
        assert server.count("/e.csv") == 1


# ------------------------------------------------------------------ size limits


def test_a_compressed_body_is_capped_after_decoding() -> None:
    bomb = gzip.compress(b"0" * 5_000_000)
    route = Route(body=bomb, headers={"Content-Encoding": "gzip"}, content_type="text/csv")
    with RouteServer({"/e.csv": route}) as server:
        with pytest.raises(SourceError, match="larger than the limit of 100000 bytes"):
            read(server.url("/e.csv"), max_bytes=100_000)
        assert server.count("/e.csv") == 1
    small = gzip.compress(CSV.encode())
    route = Route(body=small, headers={"Content-Encoding": "gzip"}, content_type="text/csv")
    with RouteServer({"/e.csv": route}) as server:
        data = read(server.url("/e.csv"))
        assert data.size == len(CSV) and content(data) == CSV.encode()


# --------------------------------------------------------------------- timeouts


def test_a_server_that_never_answers_times_out_per_attempt() -> None:
    with RouteServer({"/e.csv": hang()}) as server:
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"TimeoutError.*\(after 2 attempts\)"):
            read(server.url("/e.csv"), timeout=0.5, attempts=2)
        assert time.monotonic() - started < 5
        assert server.count("/e.csv") == 2


def test_a_dripping_body_ends_at_the_total_deadline() -> None:
    drip = Route(body=b"a,b\n" * 100, chunk_size=4, drip=0.05, content_type="text/csv")
    with RouteServer({"/e.csv": drip}) as server:
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"still sending after 0\.5 s"):
            read(server.url("/e.csv"), max_seconds=0.5)
        assert time.monotonic() - started < 4
        assert server.count("/e.csv") == 1


def test_a_refused_connection_is_retried_then_reported() -> None:
    with RouteServer() as server:
        url = server.url("/e.csv")
    with pytest.raises(SourceError, match=r"ConnectionRefusedError.*\(after 3 attempts\)"):
        read(url)


# ---------------------------------------------------------------- retryable statuses


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_is_honoured_then_the_read_succeeds(code: int) -> None:
    with RouteServer({"/e.csv": [throttled("1", code=code), text(CSV)]}) as server:
        started = time.monotonic()
        assert content(read(server.url("/e.csv"))) == CSV.encode()
        assert time.monotonic() - started >= 1.0  # the server's wait, not the 10 ms backoff
        assert server.count("/e.csv") == 2


def test_a_long_retry_after_is_capped() -> None:
    with RouteServer({"/e.csv": [throttled("3600"), text(CSV)]}) as server:
        started = time.monotonic()
        assert content(read(server.url("/e.csv"), max_retry_wait=0.2)) == CSV.encode()
        assert time.monotonic() - started < 5


def test_throttling_to_the_end_reports_the_status() -> None:
    with RouteServer({"/e.csv": throttled("0")}) as server:
        with pytest.raises(SourceError, match=r"HTTP 429 .*\(after 3 attempts\)") as caught:
            read(server.url("/e.csv"))
        assert caught.value.http_status == 429 and server.count("/e.csv") == 3


@pytest.mark.parametrize("code", [400, 404, 410])
def test_a_client_error_is_not_retried(code: int) -> None:
    with RouteServer({"/e.csv": status(code)}) as server:
        with pytest.raises(SourceError) as caught:
            read(server.url("/e.csv"))
        assert caught.value.http_status == code and server.count("/e.csv") == 1


def test_a_wrong_password_is_not_retried_and_says_what_to_check() -> None:
    with RouteServer({"/e.csv": text(CSV, auth=("acme", "other"))}) as server:
        with pytest.raises(SourceError, match="--username and password reference") as caught:
            read(server.url("/e.csv"), "acme")
        assert caught.value.http_status == 401 and server.count("/e.csv") == 1
