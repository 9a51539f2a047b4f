"""The fetcher's HTTP client against real sockets: keep-alive reuse, a connection the server
dropped while idle, compressed bodies under the size cap, and connecting only to the addresses
the SSRF guard vetted."""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import zlib
from collections.abc import Iterator

import pytest

from processors.net.http_get import HttpGetClient
from processors.net.netguard import AllowList, check_host
from processors.stages.base import StageError
from processors.stages.fetch import FetchInputs, FetchSettings, TranscriptFetchProcessor
from tests.servers import Route, RouteServer

LOOPBACK = AllowList.parse(["127.0.0.1"])
REMOTE_CSV = "https://csv.example/exports/sessions.csv"


class KeepAliveServer:
    """Answers every request on a connection with Content-Length and keep-alive, and closes
    each connection silently after ``per_connection`` answers (as an idle timeout would)."""

    def __init__(self, per_connection: int) -> None:
        self.per_connection = per_connection
        self.connections = 0
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._conn: socket.socket | None = None

    def __enter__(self) -> KeepAliveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for sock in (self.sock, self._conn):  # wakes accept() and recv(); close() does not
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self._conn = conn
            conn.settimeout(10)  # a client that stops sending does not hold the thread
            with conn, contextlib.suppress(OSError):
                buffer = b""
                for _ in range(self.per_connection):
                    while b"\r\n\r\n" not in buffer:
                        data = conn.recv(4096)
                        if not data:
                            break
                        buffer += data
                    if b"\r\n\r\n" not in buffer:
                        break
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    self.requests.append(head)
                    body = b"User: hi #%d" % len(self.requests)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                    )


@pytest.fixture
def client() -> Iterator[HttpGetClient]:
    c = HttpGetClient(connect_timeout=1.0, read_timeout=1.0)
    yield c
    c.close()


def _get(client: HttpGetClient, url: str, addresses: list[str] | None = None) -> bytes:
    with client.get(url, addresses=addresses) as response:
        assert response.status == 200
        return b"".join(response.iter_decoded(1 << 20))


def test_sequential_requests_share_one_connection(client: HttpGetClient) -> None:
    with KeepAliveServer(per_connection=100) as server:
        bodies = [_get(client, server.url(f"/t/{i}.txt")) for i in range(5)]
    assert bodies == [b"User: hi #%d" % i for i in range(1, 6)]
    assert server.connections == 1


def test_a_connection_dropped_while_idle_is_replaced_transparently(client: HttpGetClient) -> None:
    with KeepAliveServer(per_connection=1) as server:
        bodies = [_get(client, server.url("/t.txt")) for _ in range(3)]
    assert bodies == [b"User: hi #1", b"User: hi #2", b"User: hi #3"]
    assert server.connections == 3  # each reuse found the socket closed and opened a new one


def test_host_header_names_the_host_while_connecting_to_the_pinned_address(
    client: HttpGetClient,
) -> None:
    with KeepAliveServer(per_connection=1) as server:
        url = f"http://transcripts.invalid:{server.port}/t.txt"
        assert _get(client, url, addresses=["127.0.0.1"]) == b"User: hi #1"
    assert f"Host: transcripts.invalid:{server.port}".encode() in server.requests[0]


def test_guard_returns_the_vetted_addresses() -> None:
    assert check_host("localhost", 80, AllowList.parse(["127.0.0.0/8"])) == ["127.0.0.1"]
    assert check_host("localhost", 80, AllowList.parse(["localhost"])) is None  # by name


def fetch(url: str, max_bytes: int = 1 << 20) -> str:
    settings = FetchSettings(timeout=2.0, connect_timeout=1.0, allow=LOOPBACK, max_bytes=max_bytes)
    processor = TranscriptFetchProcessor(settings, {}.get)
    try:
        return processor.run(FetchInputs(url, REMOTE_CSV, None, None)).text
    finally:
        processor.close()


def fetch_error(url: str, max_bytes: int = 1 << 20) -> StageError:
    with pytest.raises(StageError) as caught:
        fetch(url, max_bytes)
    return caught.value


TEXT = "User: Hallo, wanneer zijn jullie open?\nAssistant: Van 9 tot 17 uur.\n" * 20


def test_gzip_and_deflate_bodies_are_decoded() -> None:
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    routes = {
        "/g.txt": Route(body=gzip.compress(TEXT.encode()), headers={"Content-Encoding": "gzip"}),
        "/d.txt": Route(body=zlib.compress(TEXT.encode()), headers={"Content-Encoding": "deflate"}),
        "/r.txt": Route(
            body=raw_deflate.compress(TEXT.encode()) + raw_deflate.flush(),
            headers={"Content-Encoding": "deflate"},
        ),
    }
    with RouteServer(routes) as server:
        assert [fetch(server.url(p)) for p in ("/g.txt", "/d.txt", "/r.txt")] == [TEXT] * 3
        sent = server.requests("/g.txt")[0].headers["Accept-Encoding"]
    assert "gzip" in sent


def test_a_compressed_body_is_capped_by_its_decoded_size() -> None:
    bomb = gzip.compress(b"x" * 5_000_000)  # about 5 KB on the wire
    route = Route(body=bomb, headers={"Content-Encoding": "gzip"})
    with RouteServer({"/bomb.txt": route}) as server:
        err = fetch_error(server.url("/bomb.txt"), max_bytes=100_000)
    assert len(bomb) < 100_000
    assert (err.error_type, err.retryable) == ("too_large", False)


@pytest.mark.parametrize(
    ("body", "encoding"),
    [(b"definitely not gzip", "gzip"), (b"User: hi", "br"), (b"\x78\x9c\x00garbage", "deflate")],
)
def test_undecodable_bodies_fail_as_bad_encoding(body: bytes, encoding: str) -> None:
    with RouteServer({"/x.txt": Route(body=body, headers={"Content-Encoding": encoding})}) as s:
        err = fetch_error(s.url("/x.txt"))
    assert (err.error_type, err.retryable) == ("bad_encoding", False)


def test_control_characters_in_a_url_are_a_bad_url() -> None:
    with RouteServer({"/x.txt": Route(body=b"User: hi")}) as server:
        err = fetch_error(server.url("/x.txt") + "%0d%0aX: y\r\nInjected: 1")
        assert server.total == 0
    assert (err.error_type, err.retryable) == ("bad_url", False)
