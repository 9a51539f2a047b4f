"""The pooled `HttpGetClient` against httpx, same server, same run: requests/s and CPU per request.

The server runs in another process (a keep-alive HTTP/1.1 server on 127.0.0.1), so the CPU
time counted is the client's alone. Each client reads every body to the end, as the transcript
fetcher and the CSV source do; the two take turns, ``--rounds`` times, and the median counts.

    .venv/bin/python scripts/bench_http.py --requests 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from processors.net.http_get import HttpGetClient

CHUNK = 1 << 20


def serve(ready: Any, port: Any, sizes: list[int]) -> None:
    """The server process: one body per size, at ``/SIZE``."""
    bodies = {f"/{size}": b"x" * size for size in sizes}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else each body waits out a delayed ACK

        def do_GET(self) -> None:
            body = bodies.get(self.path, b"")
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port.value = server.server_address[1]
    ready.set()
    server.serve_forever()


def pooled(url: str, n: int, max_bytes: int) -> int:
    client = HttpGetClient(connect_timeout=5, read_timeout=30)
    got = 0
    try:
        for _ in range(n):
            with client.get(url) as response:
                for chunk in response.iter_decoded(max_bytes):
                    got += len(chunk)
    finally:
        client.close()
    return got


def with_httpx(url: str, n: int, max_bytes: int) -> int:
    client = httpx.Client(timeout=httpx.Timeout(30, connect=5))
    got = 0
    try:
        for _ in range(n):
            with client.stream("GET", url) as response:
                for chunk in response.iter_bytes(CHUNK):
                    got += len(chunk)
    finally:
        client.close()
    return got


def measure(run: Callable[[str, int, int], int], url: str, n: int) -> tuple[float, float]:
    """(requests per second, client CPU milliseconds per request)."""
    wall, cpu = time.perf_counter(), time.process_time()
    got = run(url, n, 1 << 31)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert got > 0 or url.endswith("/0")
    return n / wall, cpu * 1000 / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per client, per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--sizes", default="2048,1048576", help="body sizes in bytes, comma-separated"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    ready = multiprocessing.Event()
    port = multiprocessing.Value("i", 0)
    server = multiprocessing.Process(target=serve, args=(ready, port, sizes), daemon=True)
    server.start()
    ready.wait(10)
    print(
        f"python {sys.version.split()[0]}, httpx {httpx.__version__}, {args.rounds} rounds, median"
    )
    print(f"{'body':>9} {'client':>7} {'requests':>8} {'req/s':>9} {'CPU ms/req':>11}")
    try:
        for size in sizes:
            url = f"http://127.0.0.1:{port.value}/{size}"
            n = max(20, args.requests * 2048 // max(size, 2048))
            results: dict[str, list[tuple[float, float]]] = {"pooled": [], "httpx": []}
            pooled(url, 5, 1 << 31)  # warm up
            with_httpx(url, 5, 1 << 31)
            for _ in range(args.rounds):
                results["pooled"].append(measure(pooled, url, n))
                results["httpx"].append(measure(with_httpx, url, n))
            medians = {
                name: (
                    statistics.median(r for r, _ in runs),
                    statistics.median(c for _, c in runs),
                )
                for name, runs in results.items()
            }
            for name, (rate, cpu) in medians.items():
                print(f"{size:>9} {name:>7} {n:>8} {rate:>9.0f} {cpu:>11.3f}")
            (p_rate, p_cpu), (h_rate, h_cpu) = medians["pooled"], medians["httpx"]
            print(
                f"{size:>9} {'ratio':>7} {'':>8} {p_rate / h_rate:>8.2f}x "
                f"{h_cpu / p_cpu:>10.2f}x  (pooled over httpx: req/s; httpx CPU / pooled CPU)"
            )
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
