"""A real HTTP server on 127.0.0.1 for tests, driven by a route table of canned behaviours.

    with RouteServer({"/ok": text("hello"), "/slow": hang()}) as server:
        fetch(server.url("/ok"))
        assert server.count("/ok") == 1

A route is a `Route` or a sequence of them: the n-th request to the path gets the n-th route and
the last one repeats (``[throttled("1"), text("ok")]`` answers 429 once, then 200). Unknown paths
answer 404. Requests are counted per path (query strings ignored) and recorded with their headers.
Handlers that wait (``delay``, ``drip``, ``hang``) wait on the server's stop event, so `stop()`
returns promptly even while a client is still connected.

Every server here stops within a bounded time, whatever its clients or threads do (a suite that
hangs in a fixture's teardown lands nothing): see `BoundedHTTPServer` and `ServedInThread.stop`.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Route:
    """What the server does for one request. ``hang`` wins; then auth, conditional GET, redirect."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)
    content_length: bool = True
    """Send Content-Length for ``body``; when False the body is delimited by closing."""
    delay: float = 0.0
    """Seconds to wait before the status line and headers."""
    drip: float = 0.0
    """Seconds to wait before each ``chunk_size`` piece of the body (a slow body)."""
    chunk_size: int = 64 * 1024
    hang: bool = False
    """Never answer: wait until the server stops, then drop the connection."""
    redirect_to: str | None = None
    """A path or an absolute URL for the Location header; ``status`` should then be a 3xx."""
    stream_size: int = 0
    """Send this many filler bytes in chunks, without Content-Length, instead of ``body``."""
    retry_after: str | None = None
    auth: tuple[str, str] | None = None
    """Require Basic auth with this user and password; anything else gets 401."""
    etag: str | None = None
    last_modified: str | None = None
    """With ``etag``/``last_modified`` a matching conditional GET gets 304 without a body."""


RouteSpec = Route | Sequence[Route]


def text(body: str, status: int = 200, **changes: Any) -> Route:
    return Route(status=status, body=body.encode("utf-8"), **changes)


def status(code: int, body: bytes = b"", **changes: Any) -> Route:
    return Route(status=code, body=body or f"status {code}\n".encode(), **changes)


def redirect(to: str, code: int = 302) -> Route:
    return Route(status=code, redirect_to=to, content_type=None)


def hang() -> Route:
    return Route(hang=True)


def huge(size: int, chunk_size: int = 256 * 1024) -> Route:
    return Route(stream_size=size, chunk_size=chunk_size)


def throttled(retry_after: str | None = "1", code: int = 429) -> Route:
    return Route(status=code, body=b"slow down\n", retry_after=retry_after)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]


class BoundedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that nothing can keep from stopping.

    `socketserver`'s own `shutdown()` waits without a bound for `serve_forever` to notice, and
    that thread can sit in a blocking `accept()` (issue 13: a suite hung there for more than ten
    minutes); handler threads can sit in a read from a client that never sends. Here the
    listening socket has a timeout, so `accept()` always returns; handler threads are daemons
    that `server_close()` does not wait for; every open connection is tracked, so
    `drop_connections()` can end the handlers' reads and writes at once; and a connection gets a
    read timeout even when its handler sets none."""

    daemon_threads = True
    block_on_close = False
    accept_timeout = 0.5
    """Seconds `accept()` may block on the listening socket (it should never block at all)."""
    connection_timeout = 30.0
    """Read/write timeout of a connection whose handler class sets no ``timeout`` of its own."""

    def server_activate(self) -> None:
        super().server_activate()
        self.socket.settimeout(self.accept_timeout)
        self._connections_lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = self.socket.accept()
        conn.settimeout(self.connection_timeout)  # the handler's own timeout replaces this
        with self._connections_lock:
            self._connections.add(conn)
        return conn, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Shuts down every open connection: a handler blocked on its client returns at once."""
        with self._connections_lock:
            open_now = list(self._connections)
        for conn in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def unblock_accept(self) -> None:
        """Wakes a thread blocked in `accept()` on the listening socket (Linux: EINVAL)."""
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)


class _HTTPServer(BoundedHTTPServer):
    owner: RouteServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up mid-body is part of the tests; stay quiet about it."""


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    timeout = 10  # a client that never sends its request does not pin a thread forever
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        route = owner._arrived(self)
        # A client hanging up first (size caps, timeouts) is expected in these tests.
        with contextlib.suppress(ConnectionError, TimeoutError):
            owner._respond(self, route)


class ServedInThread:
    """Start, stop and ``with`` for a test server on a background thread.

    `stop()` returns within about ``stop_bound`` seconds whatever the server's threads are doing:
    handlers that wait do so on ``stopping``; open connections are shut down; the serving loop
    checks ``stopping`` between short waits for a connection (no `socketserver.shutdown()`, which
    waits without a bound); the listening socket is shut down, which wakes a serving thread even
    inside `accept()`; and a thread that still does not end is a daemon, left behind with a
    warning rather than waited for."""

    stop_bound = 5.0
    poll_interval = 0.05

    def _serve(self, httpd: BoundedHTTPServer) -> None:
        self.stopping = threading.Event()
        self._httpd = httpd
        self._thread = threading.Thread(
            target=self._serve_until_stopped,
            name=f"test-server-{httpd.server_address[1]}",
            daemon=True,
        )
        self._started = False
        self._stopped = False

    def _serve_until_stopped(self) -> None:
        httpd = self._httpd
        httpd.timeout = self.poll_interval  # handle_request() waits this long for a connection
        try:
            while not self.stopping.is_set():
                httpd.handle_request()
        except (OSError, ValueError):
            if not self.stopping.is_set():
                raise  # the listening socket failed on its own: a real error

    def start(self) -> Self:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.stopping.set()  # releases waiting handlers and ends the serving loop
        self._httpd.drop_connections()  # and handlers blocked on a silent client
        self._httpd.unblock_accept()  # and the serving thread, even inside accept()
        if self._started:
            self._thread.join(self.stop_bound)
            if self._thread.is_alive():
                warnings.warn(
                    f"{self._thread.name} did not stop within {self.stop_bound} s; left behind",
                    RuntimeWarning,
                    stacklevel=2,
                )
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RouteServer(ServedInThread):
    def __init__(self, routes: Mapping[str, RouteSpec] | None = None) -> None:
        self.routes: dict[str, RouteSpec] = dict(routes or {})
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._requests: list[Request] = []
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._serve(httpd)

    # --------------------------------------------------------------- public
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def route(self, path: str, spec: RouteSpec) -> None:
        with self._lock:
            self.routes[path] = spec

    def count(self, path: str) -> int:
        with self._lock:
            return self._counts[path]

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def requests(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    # ------------------------------------------------------------- handling
    def _arrived(self, handler: _Handler) -> Route | None:
        path = urlsplit(handler.path).path
        with self._lock:
            nth = self._counts[path]
            self._counts[path] += 1
            self._requests.append(Request(handler.command, path, dict(handler.headers.items())))
            spec = self.routes.get(path)
        if spec is None or isinstance(spec, Route):
            return spec
        return spec[min(nth, len(spec) - 1)]

    def _respond(self, h: _Handler, route: Route | None) -> None:
        if route is None:
            return self._send(h, 404, b"no such route\n", {"Content-Type": "text/plain"})
        if route.hang:
            self.stopping.wait()
            return None
        if route.delay and self.stopping.wait(route.delay):
            return None
        headers: dict[str, str] = {}
        if route.content_type:
            headers["Content-Type"] = route.content_type
        if route.retry_after is not None:
            headers["Retry-After"] = route.retry_after
        if route.etag:
            headers["ETag"] = route.etag
        if route.last_modified:
            headers["Last-Modified"] = route.last_modified
        headers.update(route.headers)
        if route.auth and h.headers.get("Authorization") != _basic(*route.auth):
            headers["WWW-Authenticate"] = 'Basic realm="test"'
            return self._send(h, 401, b"unauthorized\n", headers)
        if _not_modified(h, route):
            return self._send(h, 304, b"", headers, content_length=False)
        if route.redirect_to is not None:
            headers["Location"] = route.redirect_to
            return self._send(h, route.status, b"", headers)
        if route.stream_size:
            return self._stream(h, route, headers)
        return self._send(h, route.status, route.body, headers, route.content_length, route)

    def _send(
        self,
        h: _Handler,
        code: int,
        body: bytes,
        headers: Mapping[str, str],
        content_length: bool = True,
        route: Route | None = None,
    ) -> None:
        h.send_response(code)
        for name, value in headers.items():
            h.send_header(name, value)
        if content_length:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        step = route.chunk_size if route and route.drip else len(body) or 1
        for i in range(0, len(body), step):
            if route and route.drip and self.stopping.wait(route.drip):
                return
            h.wfile.write(body[i : i + step])
            h.wfile.flush()

    def _stream(self, h: _Handler, route: Route, headers: Mapping[str, str]) -> None:
        h.send_response(route.status)
        for name, value in headers.items():
            h.send_header(name, value)
        h.end_headers()
        chunk = b"x" * route.chunk_size
        left = route.stream_size
        while left > 0 and not self.stopping.is_set():
            if route.drip and self.stopping.wait(route.drip):
                return
            h.wfile.write(chunk[:left])
            left -= len(chunk)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _not_modified(h: _Handler, route: Route) -> bool:
    if route.etag and h.headers.get("If-None-Match"):
        tags = [t.strip() for t in h.headers["If-None-Match"].split(",")]
        return route.etag in tags or "*" in tags
    if route.last_modified and h.headers.get("If-Modified-Since"):
        return h.headers["If-Modified-Since"] == route.last_modified
    return False
