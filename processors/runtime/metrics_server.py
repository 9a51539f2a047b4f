"""The daemon's small HTTP server for `/metrics`, `/healthz` and `/readyz`, on a background
thread: the answers come from `projections.health.HealthEndpoints`, this only carries them.

It binds 127.0.0.1 unless told otherwise (the pages have no authentication), answers each
request on its own thread (a slow database check does not hold up a scrape), and stops in
bounded time with the daemon."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from projections.health import HealthEndpoints


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    endpoints: HealthEndpoints


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    """Headers and body leave in two writes: with Nagle's algorithm the body waits for the
    client's delayed ACK (measured: 44 ms for every answer)."""

    def do_GET(self) -> None:
        try:
            code, body, content_type = self.server.endpoints.respond(self.path)
        except Exception as e:  # a page's bug must not cost the daemon or drop the socket
            code, content_type = 500, "text/plain; charset=utf-8"
            body = f"{type(e).__name__}: {e}\n".encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not news: nothing is logged per request."""


class MetricsServer:
    def __init__(self, endpoints: HealthEndpoints, host: str = "127.0.0.1", port: int = 0):
        server = _Server6 if ":" in host else _Server
        self._httpd = server((host, port), _Handler)
        self._httpd.endpoints = endpoints
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="ld-metrics"
        )
        self._thread.daemon = True

    @property
    def url(self) -> str:
        host = str(self._httpd.server_address[0])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
