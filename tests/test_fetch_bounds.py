"""Issue 13 §3/§4 at the fetcher, against real servers on 127.0.0.1: the company's credentials
reach only the origins they belong to, a URL never carries a password anywhere, every fetch
ends at its deadline (even when the server drips its headers), one slow host cannot take every
fetch thread, and a transcript that is not valid text is a recorded failure."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import pytest

from domain.company import Company, CredentialRef
from domain.session import Session
from processors.net.netguard import AllowList, Lookups
from processors.stages.base import StageError, WorkReleased
from processors.stages.fetch import (
    HOST_BUSY,
    FetchInputs,
    FetchSettings,
    TranscriptFetchProcessor,
)
from tests.factories import T0, row
from tests.servers import Route, RouteServer, redirect, text

LOOPBACK = AllowList.parse(["127.0.0.1", "localhost"])
SETTINGS = FetchSettings(timeout=2.0, connect_timeout=1.0, allow=LOOPBACK)
ENV = {"ACME_PW": "s3cret"}
REF = CredentialRef(kind="env", name="ACME_PW")


@pytest.fixture
def home() -> Iterator[RouteServer]:
    """The company's CSV host."""
    with RouteServer() as s:
        yield s


@pytest.fixture
def other() -> Iterator[RouteServer]:
    """Another origin (another port): it must never see the password."""
    with RouteServer() as s:
        yield s


def fetcher(settings: FetchSettings = SETTINGS) -> TranscriptFetchProcessor:
    return TranscriptFetchProcessor(settings, ENV.get)


def inputs(url: str, home: RouteServer, **changes: object) -> FetchInputs:
    values: dict[str, object] = {
        "raw_url": url,
        "csv_source": home.url("/export.csv"),
        "username": "acme",
        "password_ref": REF,
    }
    values.update(changes)
    return FetchInputs(**values)  # type: ignore[arg-type]


def fails(p: TranscriptFetchProcessor, given: FetchInputs) -> StageError:
    with pytest.raises(StageError) as caught:
        p.run(given)
    return caught.value


def authorization(server: RouteServer, path: str) -> list[str | None]:
    return [r.headers.get("Authorization") for r in server.requests(path)]


# ----------------------------------------------------------------------- credentials


def test_credentials_go_to_the_csv_origin_and_not_to_a_transcript_host_elsewhere(
    home: RouteServer, other: RouteServer
) -> None:
    home.route("/t/1.txt", text("User: home", auth=("acme", "s3cret")))
    other.route("/t/2.txt", text("User: elsewhere"))
    p = fetcher()
    assert p.run(inputs(home.url("/t/1.txt"), home)).text == "User: home"
    assert p.run(inputs(other.url("/t/2.txt"), home)).text == "User: elsewhere"
    assert authorization(home, "/t/1.txt") == ["Basic YWNtZTpzM2NyZXQ="]
    assert authorization(other, "/t/2.txt") == [None]


def test_a_redirect_to_another_origin_drops_the_authorization_header(
    home: RouteServer, other: RouteServer
) -> None:
    home.route("/t/1.txt", redirect(other.url("/landing.txt")))
    other.route("/landing.txt", text("User: redirected"))
    got = fetcher().run(inputs(home.url("/t/1.txt"), home))
    assert got.text == "User: redirected"
    assert authorization(home, "/t/1.txt") == ["Basic YWNtZTpzM2NyZXQ="]
    assert authorization(other, "/landing.txt") == [None]


def test_a_redirect_back_to_the_csv_origin_gets_the_credentials_again(
    home: RouteServer, other: RouteServer
) -> None:
    other.route("/t/1.txt", redirect(home.url("/t/1.txt")))
    home.route("/t/1.txt", text("User: home", auth=("acme", "s3cret")))
    assert fetcher().run(inputs(other.url("/t/1.txt"), home)).text == "User: home"
    assert authorization(other, "/t/1.txt") == [None]


def test_the_operator_can_add_origins_to_the_scope(home: RouteServer, other: RouteServer) -> None:
    other.route("/t/2.txt", text("User: trusted", auth=("acme", "s3cret")))
    scoped = inputs(other.url("/t/2.txt"), home, auth_scope=(other.base_url,))
    assert fetcher().run(scoped).text == "User: trusted"
    unscoped = fails(fetcher(), inputs(other.url("/t/2.txt"), home))
    assert (unscoped.error_type, unscoped.retryable) == ("http_401", False)
    assert "--auth-scope" in unscoped.message
    assert authorization(other, "/t/2.txt") == ["Basic YWNtZTpzM2NyZXQ=", None]


def test_a_local_csv_sends_credentials_only_to_listed_origins(
    home: RouteServer, tmp_path: Path
) -> None:
    home.route("/t.txt", text("User: hi"))
    local = str(tmp_path / "export.csv")
    p = fetcher()
    p.run(inputs(home.url("/t.txt"), home, csv_source=local))
    p.run(inputs(home.url("/t.txt"), home, csv_source=local, auth_scope=(home.base_url,)))
    assert authorization(home, "/t.txt") == [None, "Basic YWNtZTpzM2NyZXQ="]


def test_plain_http_credentials_to_a_non_loopback_host_are_refused_before_any_request() -> None:
    source = "http://files.example.invalid/export.csv"
    given = FetchInputs("http://files.example.invalid/t/1.txt", source, "acme", REF)
    err = fails(fetcher(), given)
    assert (err.error_type, err.retryable) == ("insecure_credentials", False)
    assert "http://files.example.invalid" in err.message
    assert "--allow-plain-http-auth" in err.message
    assert "s3cret" not in err.message
    # Allowed explicitly, the fetch goes ahead (and here fails on DNS, not on the rule).
    allowed = FetchInputs(given.raw_url, source, "acme", REF, allow_plain_http_auth=True)
    assert fails(fetcher(), allowed).error_type != "insecure_credentials"
    # Without credentials there is nothing to protect.
    anonymous = FetchInputs(given.raw_url, source, None, None)
    assert fails(fetcher(), anonymous).error_type != "insecure_credentials"


def test_prepare_copies_the_companys_credential_scope() -> None:
    company = Company.register(
        "Acme",
        "https://csv.example/export.csv",
        T0,
        username="acme",
        password_ref=REF,
        auth_scope=["https://cdn.example:8443/", "HTTPS://Files.Example"],
        allow_plain_http_auth=True,
    )
    session = Session.import_row(company.id, row(url="https://cdn.example:8443/x.txt"), "s", T0)
    got = fetcher().prepare(session, company)
    assert got.auth_scope == ("https://cdn.example:8443", "https://files.example")
    assert got.allow_plain_http_auth is True


# ------------------------------------------------------------------- userinfo in URLs


def test_a_transcript_url_with_a_password_is_not_fetched_and_not_repeated(
    home: RouteServer,
) -> None:
    home.route("/t.txt", text("User: hi"))
    url = f"http://mallory:hunter2@127.0.0.1:{home.port}/t.txt"
    err = fails(fetcher(), inputs(url, home))
    assert (err.error_type, err.retryable) == ("bad_url", False)
    assert "hunter2" not in err.message and "mallory" not in err.message
    assert "***@" in err.message
    assert home.total == 0


def test_a_redirect_location_with_a_password_is_followed_without_it(
    home: RouteServer, other: RouteServer
) -> None:
    home.route("/t.txt", redirect(f"http://eve:hunter2@127.0.0.1:{other.port}/x.txt"))
    other.route("/x.txt", text("User: moved"))
    got = fetcher().run(inputs(home.url("/t.txt"), home))
    assert got.url == other.url("/x.txt")  # stored without the password
    assert authorization(other, "/x.txt") == [None]


# ------------------------------------------------------------------------- deadlines


class HeaderDripServer:
    """Answers every request with a status line and then one header byte every ``interval``
    seconds, for at most ``limit`` seconds: a per-read timeout never fires on it. Records when
    each client hung up. Stops itself after ``limit``."""

    def __init__(self, interval: float, limit: float = 20.0) -> None:
        self.interval = interval
        self.limit = limit
        self.stopping = threading.Event()
        self.hung_up: list[float] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> HeaderDripServer:
        self._accept.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._accept.join(5)
        for t in self._threads:
            t.join(5)
        self.sock.close()

    def _serve(self) -> None:
        started = time.monotonic()
        while not self.stopping.is_set() and time.monotonic() - started < self.limit:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            t = threading.Thread(target=self._drip, args=(conn, started), daemon=True)
            self._threads.append(t)
            t.start()

    def _drip(self, conn: socket.socket, started: float) -> None:
        with conn:
            conn.settimeout(2)
            try:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
                while time.monotonic() - started < self.limit:
                    if self.stopping.wait(self.interval):
                        return
                    conn.sendall(b"a")
            except OSError:
                self.hung_up.append(time.monotonic())


def test_headers_dripping_a_byte_at_a_time_end_at_the_deadline_and_free_the_thread() -> None:
    deadline = 1.5
    settings = FetchSettings(timeout=deadline, connect_timeout=1.0, allow=LOOPBACK)
    p = fetcher(settings)
    errors: list[StageError] = []
    ended: list[float] = []

    def work(url: str) -> None:
        try:
            p.run(FetchInputs(url, "https://csv.example/export.csv", None, None))
        except StageError as e:
            errors.append(e)
        ended.append(time.monotonic())

    # A byte every 0.25 s: each read succeeds long before the per-read timeout.
    with HeaderDripServer(interval=0.25) as server:
        started = time.monotonic()
        worker = threading.Thread(target=work, args=(server.url("/t.txt"),), daemon=True)
        worker.start()
        worker.join(deadline + 5)
        assert not worker.is_alive(), "the fetch thread is still held by the dripping server"
        # The server notices the client gave up: the socket was closed, not left open.
        for _ in range(50):
            if server.hung_up:
                break
            time.sleep(0.1)
        assert server.hung_up
    assert [(e.error_type, e.retryable) for e in errors] == [("timeout", True)]
    assert ended[0] - started < deadline + 1.0
    p.close()


def test_a_dripping_redirect_chain_shares_one_deadline(home: RouteServer) -> None:
    # Each hop answers in 0.4 s, well within any per-read timeout; five hops take 2 s.
    for i in range(5):
        home.route(f"/hop{i}", Route(status=302, redirect_to=f"/hop{i + 1}", delay=0.4))
    home.route("/hop5", text("User: finally"))
    p = fetcher(FetchSettings(timeout=1.0, connect_timeout=1.0, allow=LOOPBACK))
    started = time.monotonic()
    err = fails(p, inputs(home.url("/hop0"), home, username=None, password_ref=None))
    assert (err.error_type, err.retryable) == ("timeout", True)
    assert time.monotonic() - started < 2.0
    assert home.count("/hop5") == 0


# ------------------------------------------------------------------------- host slots


def test_a_slow_host_takes_at_most_its_slots_and_other_hosts_go_on() -> None:
    """16 rows on a slow host, then 40 on a quick one, on a pool as big as the stage's
    (16 threads). The slow host gets 4 fetches at once; the others are handed back unstarted,
    so every quick row completes while the slow host still holds its 4."""
    settings = FetchSettings(
        timeout=30.0, connect_timeout=1.0, allow=LOOPBACK, per_host=4, host_wait=0.2
    )
    p = fetcher(settings)
    slow = RouteServer({"/slow.txt": Route(body=b"User: late", delay=60)}).start()
    quick = RouteServer({"/quick.txt": text("User: quick")}).start()
    pool = ThreadPoolExecutor(max_workers=16)
    try:
        plain = {"username": None, "password_ref": None, "csv_source": "https://csv.example/x"}
        slow_url = slow.url("/slow.txt")  # host 127.0.0.1
        quick_url = f"http://localhost:{quick.port}/quick.txt"  # host localhost
        a: list[Future[object]] = [
            pool.submit(p.run, FetchInputs(slow_url, **plain))  # type: ignore[arg-type]
            for _ in range(16)
        ]
        b: list[Future[object]] = [
            pool.submit(p.run, FetchInputs(quick_url, **plain))  # type: ignore[arg-type]
            for _ in range(40)
        ]
        done, _ = wait(b, timeout=20)
        assert len(done) == 40, "quick rows waited behind the slow host"
        assert all(f.exception() is None for f in b)
        assert quick.count("/quick.txt") == 40
        # Meanwhile the slow host never had more than its 4 fetches.
        assert slow.count("/slow.txt") == 4
        assert p.hosts.busy("127.0.0.1") == 4
        deadline = time.monotonic() + 20  # the 12 refusals finish on busy worker threads
        while sum(f.done() for f in a) < 12 and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = [f.exception() for f in a if f.done()]
        assert len(busy) == 12
        for e in busy:  # handed back unstarted: no attempt used
            assert isinstance(e, WorkReleased)
            assert str(e).startswith(HOST_BUSY)
    finally:
        slow.stop()  # drops the 4 waiting connections: their fetches end now
        quick.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        p.close()
    assert p.hosts.busy("127.0.0.1") == 0  # every slot was given back


def test_a_host_slot_is_given_back_whatever_the_outcome(home: RouteServer) -> None:
    home.route("/ok.txt", text("User: ok"))
    home.route("/gone.txt", Route(status=404, body=b"no"))
    home.route("/r.txt", redirect("/ok.txt"))
    p = fetcher(FetchSettings(timeout=2.0, allow=LOOPBACK, per_host=1, host_wait=0.0))
    plain = {"username": None, "password_ref": None}
    for path in ("/ok.txt", "/gone.txt", "/r.txt", "/ok.txt"):
        try:
            p.run(inputs(home.url(path), home, **plain))
        except StageError as e:
            assert e.error_type == "http_404"
    assert p.hosts.busy("127.0.0.1") == 0
    assert home.count("/ok.txt") == 3


# -------------------------------------------------------------------------- encodings


def test_a_transcript_that_is_not_utf8_fails_as_invalid_encoding(home: RouteServer) -> None:
    home.route("/t.txt", Route(body=b"User: caf\xe9 cr\xe8me\n", content_type="text/plain"))
    err = fails(fetcher(), inputs(home.url("/t.txt"), home, username=None, password_ref=None))
    assert (err.error_type, err.retryable) == ("invalid_encoding", False)
    assert "offset 9" in err.message and "e9" in err.message


def test_a_wrong_declared_charset_fails_as_invalid_encoding(home: RouteServer) -> None:
    body = b"User: caf\xe9\n"
    home.route("/t.txt", Route(body=body, content_type="text/plain; charset=utf-8"))
    home.route("/l.txt", Route(body=body, content_type="text/plain; charset=iso-8859-1"))
    home.route("/x.txt", Route(body=body, content_type="text/plain; charset=x-unknown"))
    plain = {"username": None, "password_ref": None}
    p = fetcher()
    assert fails(p, inputs(home.url("/t.txt"), home, **plain)).error_type == "invalid_encoding"
    assert p.run(inputs(home.url("/l.txt"), home, **plain)).text == "User: café\n"
    unknown = fails(p, inputs(home.url("/x.txt"), home, **plain))
    assert unknown.error_type == "invalid_encoding" and "x-unknown" in unknown.message


def test_a_local_transcript_that_is_not_utf8_fails_as_invalid_encoding(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_bytes(b"User: \xff\xfe hello\n")
    given = FetchInputs("t.txt", str(tmp_path / "export.csv"), None, None)
    err = fails(fetcher(), given)
    assert (err.error_type, err.retryable) == ("invalid_encoding", False)


def test_a_name_lookup_that_hangs_is_left_behind_at_the_deadline() -> None:
    """getaddrinfo has no timeout: the fetch waits for it only until its deadline, and the
    lookup thread is a daemon thread that never delays the process's exit."""
    lookups = Lookups(threads=2)
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        lookups.run(lambda: release.wait(30), timeout=0.3)
    assert time.monotonic() - started < 2.0
    stuck = [t for t in threading.enumerate() if t.name == "livedash-lookup"]
    assert stuck and all(t.daemon for t in stuck)
    # Another lookup still gets an answer while the first one hangs.
    assert lookups.run(lambda: ["192.0.2.7"], timeout=5) == ["192.0.2.7"]
    release.set()


def test_closing_the_fetcher_cuts_off_fetches_under_way(home: RouteServer) -> None:
    """At shutdown the daemon closes its processors: a fetch still waiting on a slow server
    ends at once instead of keeping its (joined-at-exit) pool thread until the deadline."""
    home.route("/hang.txt", Route(body=b"User: late", delay=60))
    p = fetcher(FetchSettings(timeout=60.0, connect_timeout=1.0, allow=LOOPBACK))
    errors: list[StageError] = []

    def work() -> None:
        try:
            p.run(inputs(home.url("/hang.txt"), home, username=None, password_ref=None))
        except StageError as e:
            errors.append(e)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    for _ in range(100):
        if home.count("/hang.txt"):
            break
        time.sleep(0.05)
    assert home.count("/hang.txt") == 1
    p.close()
    worker.join(5)
    assert not worker.is_alive()
    assert [e.error_type for e in errors] == ["connection_error"]
    # A closed fetcher starts nothing new.
    err = fails(p, inputs(home.url("/hang.txt"), home, username=None, password_ref=None))
    assert err.error_type == "connection_error" and home.count("/hang.txt") == 1


def test_sigterm_ends_the_daemon_within_its_grace_while_a_server_drips_headers(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The issue's report: a server sending its headers a byte a second kept a fetch thread
    forever and the daemon never exited after SIGTERM. Now: grace plus a few seconds."""
    import os
    import signal
    import subprocess

    from tests.conftest import LIVEDASH, REPO

    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
    env.update(PYTHONPATH=str(REPO), LIVEDASH_DATABASE_URL=sqlite_url)

    def livedash(*args: str) -> None:
        subprocess.run([*LIVEDASH, *args], env=env, check=True, capture_output=True, timeout=120)

    grace = 2.0
    with HeaderDripServer(interval=1.0, limit=90) as server:
        export = tmp_path / "export.csv"
        export.write_text(
            "".join(
                f"d-{i},01.10.2026 10:00:00,01.10.2026 10:05:00,192.0.2.1,NL,dutch,2,happy,"
                f"no,no,{server.url(f'/t/{i}.txt')},2.5,100,0.0010,Sick,hallo\n"
                for i in range(4)
            ),
            encoding="utf-8",
        )
        livedash("init")
        livedash("company", "add", "Drip", "--csv-url", str(export))
        livedash("import", "--company", "Drip")
        daemon = subprocess.Popen(
            [*LIVEDASH, "run", "--csv-interval", "0", "--poll-interval", "0.2",
             "--grace", str(grace), "--stages", "TRANSCRIPT_FETCH"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            for _ in range(300):  # until the fetches are being dripped on
                if len(server._threads) >= 4 or daemon.poll() is not None:
                    break
                time.sleep(0.1)
            assert len(server._threads) >= 4, daemon.stderr and daemon.stderr.read()
            signalled = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=grace + 20)
            took = time.monotonic() - signalled
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait(10)
    assert daemon.returncode == 0, daemon.stderr.read() if daemon.stderr else ""
    assert took < grace + 5.0, f"exit took {took:.1f}s after SIGTERM"


def test_the_per_host_limit_is_a_setting() -> None:
    from cli.bootstrap import build_processors
    from cli.settings import Settings
    from domain.stages import Stage

    def per_host(env: dict[str, str]) -> int:
        fetch = build_processors(Settings.from_env(env), {}.get)[Stage.TRANSCRIPT_FETCH]
        assert isinstance(fetch, TranscriptFetchProcessor)
        assert fetch.hosts.per_host == fetch.settings.per_host
        return fetch.settings.per_host

    assert per_host({}) == 4
    assert per_host({"LIVEDASH_FETCH_PER_HOST": "2"}) == 2


def test_the_daemon_completes_a_quick_host_while_a_slow_one_holds_its_slots(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The issue's report through `livedash run`: 16 slow rows first, then 40 instant ones on
    another host. Every instant row completes while the slow host still holds its first four
    fetches (none of them has even timed out yet), and it never got more than four."""
    import json
    import os
    import signal
    import subprocess

    from domain.session import Session as SessionAgg
    from tests.conftest import LIVEDASH, REPO
    from tests.harness import runtime

    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
    env.update(PYTHONPATH=str(REPO), LIVEDASH_DATABASE_URL=sqlite_url)

    def livedash(*args: str) -> str:
        done = subprocess.run(
            [*LIVEDASH, *args], env=env, check=True, capture_output=True, text=True, timeout=120
        )
        return done.stdout

    def csv_line(ext: str, url: str) -> str:
        return (
            f"{ext},01.10.2026 10:00:00,01.10.2026 10:05:00,192.0.2.1,NL,dutch,2,happy,"
            f"no,no,{url},2.5,100,0.0010,Sick,hallo\n"
        )

    chat = "[01.10.2026 10:00:05] User: Hallo?\n"
    slow = RouteServer({"/slow.txt": Route(body=chat.encode(), delay=120)}).start()
    quick = RouteServer({"/quick.txt": text(chat)}).start()
    daemon: subprocess.Popen[str] | None = None
    try:
        rows = [csv_line(f"a-{i:02d}", slow.url("/slow.txt")) for i in range(16)]
        rows += [
            csv_line(f"b-{i:02d}", f"http://localhost:{quick.port}/quick.txt") for i in range(40)
        ]
        export = tmp_path / "export.csv"
        export.write_text("".join(rows), encoding="utf-8")
        livedash("init")
        livedash("company", "add", "Mixed", "--csv-url", str(export))
        livedash("import", "--company", "Mixed")
        daemon = subprocess.Popen(
            [*LIVEDASH, "run", "--csv-interval", "0", "--poll-interval", "0.2",
             "--stages", "TRANSCRIPT_FETCH", "--concurrency", "TRANSCRIPT_FETCH=16"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        completed: list[str] = []
        for _ in range(120):
            if quick.count("/quick.txt") >= 40 and daemon.poll() is None:
                out = livedash(
                    "sessions", "--stage", "TRANSCRIPT_FETCH", "--status", "COMPLETED",
                    "--limit", "100", "--json",
                )  # fmt: skip
                completed = [r["external_id"] for r in json.loads(out)]
                if len(completed) >= 40:
                    break
            time.sleep(0.25)
        slow_requests = slow.count("/slow.txt")
        assert sorted(completed) == [f"b-{i:02d}" for i in range(40)]
        assert slow_requests == 4  # its four slots, still waiting for their answers
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
        slow.stop()
        quick.stop()
    with runtime(sqlite_url, create=False) as rt:
        rt.runner.catch_up()
        from sqlalchemy import select

        from projections.schema import sessions as sessions_table

        with rt.engine.connect() as conn:
            ids = {
                r.external_id: r.session_id
                for r in conn.execute(
                    select(sessions_table.c.external_id, sessions_table.c.session_id)
                )
            }
        last_quick = max(
            e.timestamp
            for ext, sid in ids.items()
            if ext.startswith("b-")
            for e in rt.app.session_events(sid)
            if isinstance(e, SessionAgg.TranscriptFetched)
        )
        slow_failures = [
            e
            for ext, sid in ids.items()
            if ext.startswith("a-")
            for e in rt.app.session_events(sid)
            if isinstance(e, SessionAgg.StageFailed)
        ]
    # The slow host's rows were handed back (host_busy) or still running: none timed out
    # before the last quick row was done.
    assert all(e.error_type == HOST_BUSY or e.timestamp > last_quick for e in slow_failures), [
        (e.error_type, e.timestamp) for e in slow_failures
    ]
