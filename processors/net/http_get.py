"""A small pooled HTTP/1.1 GET client on the standard library's `http.client`.

The transcript fetcher runs on 32 threads beside the daemon's loop, in one interpreter. httpx
spends about 0.67 ms of Python per request (its URL, header and h11 state machines); this
client spends about 0.14 ms, and every millisecond a fetch thread holds the GIL is one the
loop waits for. The CSV source uses it too (`scripts/bench_http.py` measures both clients).
It does only what they need: GET, keep-alive per origin, separate connect and read timeouts,
connecting to addresses the SSRF guard has already vetted (so a second DNS answer cannot swap
them), gzip/deflate bodies decoded under the caller's size cap.

A request may carry a total deadline (connect to last byte): every blocking step, the connect,
the TLS handshake, the send and each receive, waits at most until then. A per-read timeout
alone restarts with every byte, so a server dripping its headers could hold a thread forever.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import io
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.message import Message
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

Origin = tuple[str, str, int]
READ_SIZE = 64 * 1024
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
"""How a keep-alive connection the server closed meanwhile fails on reuse."""


class BodyDecodingError(Exception):
    """The body's Content-Encoding is unknown or its compressed data is corrupt."""


class BodyTooLarge(Exception):
    """The decoded body grew past the caller's cap."""


@dataclass(frozen=True)
class Target:
    origin: Origin
    request_target: str
    host_header: str


def parse_target(url: str) -> Target:
    """Raises ValueError (or http.client.InvalidURL) for a URL we cannot request."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    return Target((scheme, host.lower(), port), path, host_header)


NO_DEADLINE = float("inf")


def _left(deadline: float, what: str) -> float:
    """Seconds until ``deadline``; raises TimeoutError when it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"deadline passed {what}")
    return left


class _DeadlineIO(io.RawIOBase):
    """The response's socket stream, each receive waiting at most until the deadline (and at
    most ``idle`` seconds for one piece), so the total time is bounded, not the time per byte."""

    def __init__(self, raw: Any, sock: socket.socket, deadline: float, idle: float) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._deadline = deadline
        self._idle = idle

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(min(self._idle, _left(self._deadline, "while reading")))
        return int(self._raw.readinto(buffer))

    def close(self) -> None:
        if not self.closed:
            self._raw.close()  # lets the socket close once the connection has let go of it
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(
        self,
        sock: socket.socket,
        debuglevel: int = 0,
        method: str | None = None,
        url: str | None = None,
        *,
        deadline: float = NO_DEADLINE,
        idle: float = 60.0,
    ) -> None:
        super().__init__(sock, debuglevel, method, url)
        # The same socket stream (it keeps the socket open while the body is read), behind a
        # reader that keeps the deadline.
        self.fp = io.BufferedReader(_DeadlineIO(self.fp.detach(), sock, deadline, idle))


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the given addresses (vetted by the caller), not to a fresh DNS answer."""

    def __init__(
        self, host: str, port: int, timeout: float, addresses: Sequence[str] | None
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self.addresses = list(addresses or [])
        self.deadline = NO_DEADLINE
        """The current request's deadline (set before every request on this connection)."""

    def _open_socket(self) -> socket.socket:
        if not self.addresses:
            return socket.create_connection((self.host, self.port), self._connect_timeout())
        last: OSError | None = None
        for address in self.addresses:
            try:
                return socket.create_connection((address, self.port), self._connect_timeout())
            except OSError as e:
                last = e
        assert last is not None
        raise last

    def _connect_timeout(self) -> float:
        limit = self.timeout if isinstance(self.timeout, float | int) else NO_DEADLINE
        return min(limit, _left(self.deadline, "before connecting"))

    def connect(self) -> None:
        self.sock = self._open_socket()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(_PinnedHTTP):
    default_port = 443

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        addresses: Sequence[str] | None,
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(host, port, timeout, addresses)
        self.context = context

    def connect(self) -> None:
        super().connect()
        # The certificate is checked against the host name, whichever address we reached.
        # The handshake's timeout covers the whole handshake, so the deadline bounds it.
        self.sock.settimeout(self._connect_timeout())
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)


class Response:
    """One response; its connection goes back to the pool only if the body was read to the end."""

    def __init__(
        self,
        client: HttpGetClient,
        origin: Origin,
        conn: _PinnedHTTP,
        raw: http.client.HTTPResponse,
    ) -> None:
        self._client = client
        self._origin = origin
        self._conn: _PinnedHTTP | None = conn
        self._raw = raw
        self.status = raw.status
        self.reason = raw.reason or ""
        self.headers: Message = raw.headers

    @property
    def is_redirect(self) -> bool:
        return self.status in (301, 302, 303, 307, 308)

    @property
    def charset(self) -> str | None:
        value = self.headers.get_content_charset()
        return str(value) if value else None

    def iter_decoded(self, max_bytes: int) -> Iterator[bytes]:
        """The body as sent, decoded from gzip/deflate; raises BodyTooLarge past ``max_bytes``
        of decoded data (a small compressed body may expand enormously)."""
        decoder = _decoder(self.headers.get("content-encoding"))
        size = 0
        while True:
            chunk = self._raw.read1(READ_SIZE)
            if not chunk:
                break
            for piece in decoder(chunk, max_bytes - size + 1):
                size += len(piece)
                if size > max_bytes:
                    raise BodyTooLarge(size)
                yield piece
        for piece in decoder(b"", max_bytes - size + 1):
            size += len(piece)
            if size > max_bytes:
                raise BodyTooLarge(size)
            yield piece
        self._raw.read()  # at the end already: marks the response done, the connection free

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._client._finished(conn)
        if self._raw.isclosed() and not self._raw.will_close:
            self._client._release(self._origin, conn)  # body fully read: reusable
        else:
            self._raw.close()
            conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class HttpGetClient:
    def __init__(
        self,
        connect_timeout: float,
        read_timeout: float,
        headers: dict[str, str] | None = None,
        max_idle_per_origin: int = 32,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.headers = {"Accept-Encoding": "gzip, deflate", **(headers or {})}
        self.max_idle = max_idle_per_origin
        self._ssl = ssl_context or ssl.create_default_context()
        self._idle: dict[Origin, list[_PinnedHTTP]] = {}
        self._active: set[_PinnedHTTP] = set()
        """Connections with a request under way: `close` cuts them off."""
        self._closed = False
        self._lock = threading.Lock()

    def get(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        addresses: Sequence[str] | None = None,
        deadline: float | None = None,
    ) -> Response:
        """Sends a GET. ``addresses``: connect only to these (the guard's vetted answer).
        ``deadline`` (on `time.monotonic`): nothing of this request, body included, waits
        past it; a read that would raises TimeoutError and the connection is closed.

        Raises OSError (TimeoutError included), http.client.HTTPException or ValueError."""
        target = parse_target(url)
        sent = {**self.headers, "Host": target.host_header, **(headers or {})}
        until = NO_DEADLINE if deadline is None else deadline
        reused = self._take(target.origin)
        if reused is not None:
            try:
                return self._send(target, reused, sent, until)
            except STALE:
                reused.close()  # the server dropped it while idle: one fresh try
        return self._send(target, self._open(target.origin, addresses), sent, until)

    def _send(
        self, target: Target, conn: _PinnedHTTP, headers: dict[str, str], deadline: float
    ) -> Response:
        conn.deadline = deadline
        conn.response_class = functools.partial(  # type: ignore[assignment]
            _DeadlineResponse, deadline=deadline, idle=self.read_timeout
        )
        with self._lock:
            if self._closed:
                conn.close()
                raise ConnectionAbortedError("the HTTP client is closed")
            self._active.add(conn)
        try:
            if conn.sock is None:
                conn.connect()
                assert conn.sock is not None
            # sendall's timeout bounds the whole send, not each piece.
            conn.sock.settimeout(min(self.read_timeout, _left(deadline, "before sending")))
            conn.putrequest("GET", target.request_target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            raw = conn.getresponse()
        except BaseException:
            self._finished(conn)
            conn.close()
            raise
        return Response(self, target.origin, conn, raw)

    def _finished(self, conn: _PinnedHTTP) -> None:
        with self._lock:
            self._active.discard(conn)

    def _open(self, origin: Origin, addresses: Sequence[str] | None) -> _PinnedHTTP:
        scheme, host, port = origin
        if scheme == "https":
            return _PinnedHTTPS(host, port, self.connect_timeout, addresses, self._ssl)
        return _PinnedHTTP(host, port, self.connect_timeout, addresses)

    def _take(self, origin: Origin) -> _PinnedHTTP | None:
        with self._lock:
            idle = self._idle.get(origin)
            return idle.pop() if idle else None

    def _release(self, origin: Origin, conn: _PinnedHTTP) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.max_idle and not self._closed:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Closes the idle connections and cuts off requests under way (their threads see
        the connection end at once), so a process stopping never waits for a slow server."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
            active = list(self._active)
        for conns in idle.values():
            for conn in conns:
                conn.close()
        for conn in active:
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _decoder(encoding: str | None) -> _Decoder:
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        return _Decoder(None)
    if name in ("gzip", "x-gzip"):
        return _Decoder(zlib.decompressobj(16 + zlib.MAX_WBITS))
    if name == "deflate":
        return _Decoder(zlib.decompressobj(zlib.MAX_WBITS), raw_fallback=True)
    raise BodyDecodingError(f"unsupported Content-Encoding {encoding!r}")


class _Decoder:
    """Feeds compressed chunks through zlib, never producing more than ``limit`` at once."""

    def __init__(self, inflater: zlib._Decompress | None, raw_fallback: bool = False) -> None:
        self.inflater = inflater
        self.raw_fallback = raw_fallback
        self.started = False

    def __call__(self, chunk: bytes, limit: int) -> Iterator[bytes]:
        if self.inflater is None:
            if chunk:
                yield chunk
            return
        try:
            yield from self._inflate(chunk, limit)
        except zlib.error as e:
            raise BodyDecodingError(str(e)) from None

    def _inflate(self, chunk: bytes, limit: int) -> Iterator[bytes]:
        assert self.inflater is not None
        if not self.started and chunk and self.raw_fallback:
            self.started = True
            try:
                zlib.decompressobj(zlib.MAX_WBITS).decompress(chunk[:64], 1)
            except zlib.error:  # "deflate" sent without its zlib header, as some servers do
                self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        data = chunk
        if not data:
            tail = self.inflater.flush()
            if tail:
                yield tail
            return
        while data:
            out = self.inflater.decompress(data, max(1, limit))
            if out:
                yield out
            data = self.inflater.unconsumed_tail
