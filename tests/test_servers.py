"""The test servers stop within a bounded time whatever their clients and threads do.

A server that cannot stop hangs the suite in a fixture's teardown (issue 13 §7: `socketserver`'s
`shutdown()` waited for ever on a thread blocked in `accept()`). Each test stops the server from
a helper thread and gives it ``BOUND`` seconds: a bound for a hang, not a speed measurement.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from tests.openai_server import FakeOpenAI
from tests.servers import BoundedHTTPServer, RouteServer, ServedInThread, hang, text

BOUND = 10.0


def stop_within(server: ServedInThread, bound: float = BOUND) -> float:
    """Seconds `server.stop()` took; fails (without hanging) when it takes longer than ``bound``."""
    started = time.monotonic()
    stopper = threading.Thread(target=server.stop, name="stopper", daemon=True)
    stopper.start()
    stopper.join(bound)
    assert not stopper.is_alive(), f"stop() still running after {bound} s"
    return time.monotonic() - started


def silent_client(port: int) -> socket.socket:
    """A client that connects and never sends its request: its handler thread waits on it."""
    client = socket.create_connection(("127.0.0.1", port), timeout=BOUND)
    return client


def wait_until(condition: Any, bound: float = BOUND) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.mark.parametrize("kind", ["routes", "openai"])
def test_a_server_with_a_silent_client_stops_and_lets_it_go(kind: str) -> None:
    server: ServedInThread = RouteServer({"/": text("ok")}) if kind == "routes" else FakeOpenAI()
    server.start()
    httpd = server._httpd
    with silent_client(httpd.server_address[1]) as client:
        wait_until(lambda: len(httpd._connections) == 1)  # its handler is reading from it
        stop_within(server)
        # The server closed the connection at stop, instead of leaving a handler thread
        # reading from it until its own timeout: the client sees the end of the stream now.
        # (The end is on its way before stop() returns; 2 s is far below the handlers' timeouts.)
        client.settimeout(2.0)
        assert client.recv(1) == b""


def test_a_server_with_a_hanging_route_and_its_client_stops() -> None:
    server = RouteServer({"/hang": hang()}).start()
    results: list[BaseException | bytes] = []

    def fetch() -> None:
        try:
            with urllib.request.urlopen(server.url("/hang"), timeout=BOUND) as r:
                results.append(r.read())
        except Exception as e:  # what the client saw is the point
            results.append(e)

    client = threading.Thread(target=fetch, daemon=True)
    client.start()
    wait_until(lambda: server.count("/hang") == 1)
    stop_within(server)
    client.join(BOUND)
    assert not client.is_alive() and len(results) == 1


class _StuckInAccept(BoundedHTTPServer):
    """Its serving thread ends up blocked in `accept()` on a listening socket without a timeout,
    as the hung run's was: it takes the one connection the selector saw and then accepts again,
    and no second client ever comes."""

    entered_accept: threading.Event

    def get_request(self) -> tuple[socket.socket, Any]:
        self.socket.settimeout(None)
        first, _ = self.socket.accept()
        first.close()
        self.entered_accept.set()
        return self.socket.accept()


class _StuckServer(ServedInThread):
    def __init__(self) -> None:
        httpd = _StuckInAccept(("127.0.0.1", 0), BaseHTTPRequestHandler)
        httpd.entered_accept = threading.Event()
        self.entered_accept = httpd.entered_accept
        self._serve(httpd)


def test_a_server_whose_serving_thread_is_blocked_in_accept_stops() -> None:
    server = _StuckServer().start()
    with socket.create_connection(("127.0.0.1", server._httpd.server_address[1]), timeout=BOUND):
        assert server.entered_accept.wait(BOUND)
    took = stop_within(server)
    assert took < BOUND
    server._thread.join(BOUND)
    assert not server._thread.is_alive()  # woken, not merely left behind
