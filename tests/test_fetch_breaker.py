"""A circuit breaker per transcript origin (issue 18 §2): a dead transcript host costs a few
probes, not a retry storm, while the fetches from other hosts go on; the real daemon."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from domain.pipeline import Pipeline
from domain.stages import Stage
from tests.conftest import REPO, Livedash
from tests.harness import runtime
from tests.servers import Route, RouteServer, status, text
from tests.test_stage_pause import CHAT, _pipeline, counts, daemons, load, register, until

FETCH = Stage.TRANSCRIPT_FETCH.value


def export(tmp_path: Path, hosts: dict[str, tuple[RouteServer, int]]) -> Path:
    lines = []
    for prefix, (server, n) in hosts.items():
        for i in range(n):
            url = server.url(f"/{prefix}{i}.txt")
            lines.append(
                f"{prefix}-{i},01.10.2026 10:00:00,01.10.2026 10:05:00,192.0.2.1,NL,dutch,2,"
                f"happy,no,no,{url},2.5,100,0.0010,Sick,hallo\n"
            )
    path = tmp_path / "two-hosts.csv"
    path.write_text("".join(lines), encoding="utf-8")
    return path


class Switchable(RouteServer):
    """Answers 503 to every path while ``down`` is set (counting them), the chat otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.down = threading.Event()
        self.down.set()
        self.refused = 0

    def _arrived(self, handler: object) -> Route | None:
        super()._arrived(handler)  # type: ignore[arg-type]
        if self.down.is_set():
            self.refused += 1
            return status(503)
        return text(CHAT)


def test_a_dead_transcript_host_is_probed_while_the_others_are_fetched(
    sqlite_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
    livedash = Livedash(sqlite_url, tmp_path, {**env, "PYTHONPATH": str(REPO)})
    logs = [tmp_path / "d0.log"]
    dead_n, alive_n, window, concurrency = 12, 6, 4, 2
    with Switchable() as dead, RouteServer() as alive, runtime(sqlite_url) as rt:
        for i in range(alive_n):
            alive.routes[f"/a{i}.txt"] = text(CHAT)
        csv = export(tmp_path, {"d": (dead, dead_n), "a": (alive, alive_n)})
        load(rt, register(rt, "C", csv), csv)
        args = ["--concurrency", f"{FETCH}={concurrency}", "--breaker-window", str(window)]
        # Cool-downs of 0.3, 0.6 and 1.2 s (capped at 2): few probes, however slow the machine.
        args += ["--breaker-cool-down", "0.3", "--breaker-max-cool-down", "2"]
        with daemons(livedash, logs, *args, LIVEDASH_FETCH_ALLOW_HOSTS="127.0.0.1"):
            # The other host's transcripts are all fetched, whatever the dead one does.
            until(lambda: counts(rt, "C")[FETCH]["COMPLETED"] >= alive_n, "alive fetched", logs)
            until(
                lambda: sum(isinstance(e, Pipeline.BreakerOpened) for e in _pipeline(rt)) >= 3,
                "the dead host's breaker opened and two probes failed",
                logs,
            )
            during = dead.total
            dead.down.clear()

            def settled() -> bool:
                c = counts(rt, "C")[FETCH]
                closed = isinstance(_pipeline(rt)[-1], Pipeline.BreakerClosed)
                return closed and c["COMPLETED"] + c["FAILED"] == dead_n + alive_n

            until(settled, "a probe got through and the rest was fetched", logs)
            events = _pipeline(rt)
    origin = dead.base_url  # http://127.0.0.1:PORT: the port is always written
    kinds = [(type(e).__name__, e.provider) for e in events]
    assert all(provider == origin for _, provider in kinds), kinds  # the alive host: none
    assert [k for k, _ in kinds][:5] == [
        "BreakerOpened",
        "BreakerHalfOpened",
        "BreakerOpened",
        "BreakerHalfOpened",
        "BreakerOpened",
    ]
    assert kinds[-1][0] == "BreakerClosed"
    assert "http_503" in events[0].breaker.reason
    # The window's attempts, those running when it opened, and one request per probe: the
    # dead host's other sessions were not tried (without the breaker all 12 would have been,
    # and each failed one again at its retry).
    probes = sum(isinstance(e, Pipeline.BreakerHalfOpened) for e in events)
    assert during <= dead.refused <= window + concurrency + probes < dead_n, (during, probes)
    log = logs[0].read_text()
    assert '"breaker_probe"' in log and origin in log
