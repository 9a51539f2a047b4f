"""Shared fixtures: real SQLite files, real PostgreSQL databases, the real `livedash` command.

Also the suite's tiers and its guard against hanging:

- every test that uses PostgreSQL is marked ``postgres`` and every test that starts a Python
  subprocess (the real `livedash`, a script) is marked ``slow``, from its fixtures and from the
  code it reaches (`pytest_collection_modifyitems`); `make test-fast` runs the rest. A test that
  uses either without its mark fails, so the fast tier stays what it says.
- a session watchdog: if the run (or the process's exit after it) outlives its budget, every
  thread's stack is dumped and the process exits 1, where the per-test timeout cannot reach.
"""

from __future__ import annotations

import faulthandler
import inspect
import os
import subprocess
import sys
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

PG_HOST = os.environ.get("LIVEDASH_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("LIVEDASH_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("LIVEDASH_TEST_PG_USER", "postgres")
REPO = Path(__file__).resolve().parent.parent
SAMPLE_CSV = REPO / "tests" / "data" / "livedash-sample.csv"  # six rows of the original export
LIVEDASH = [sys.executable, "-m", "cli.main"]


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user=PG_USER,
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
    )


def _postgres_required() -> bool:
    return bool(os.environ.get("LIVEDASH_REQUIRE_POSTGRES") or os.environ.get("CI"))


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new, uniquely named PostgreSQL database, dropped afterwards."""
    _require_mark("postgres", "uses PostgreSQL")
    try:
        admin = _admin()
    except psycopg.OperationalError as e:
        if _postgres_required():
            pytest.fail(f"PostgreSQL is required here but unreachable: {e}")
        pytest.skip(f"PostgreSQL unreachable: {e}")
    name = f"livedash_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with _admin() as admin2:
            admin2.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'livedash.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'livedash.db'}"
    else:
        with fresh_pg_database() as url:
            yield url


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@dataclass
class Livedash:
    """Runs the real command in a subprocess, as a user or a script would."""

    database_url: str
    cwd: Path
    env: dict[str, str]

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        """The command left running (a daemon); the caller stops it."""
        return subprocess.Popen(
            [*LIVEDASH, *args],
            cwd=self.cwd,
            env={**self.env, "LIVEDASH_DATABASE_URL": self.database_url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> CliResult:
        proc = subprocess.run(
            [*LIVEDASH, *args],
            cwd=self.cwd,
            env={**self.env, "LIVEDASH_DATABASE_URL": self.database_url},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        result = CliResult(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"livedash {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return result


@pytest.fixture
def livedash(database_url: str, tmp_path: Path) -> Livedash:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
    env["PYTHONPATH"] = str(REPO)
    env["COLUMNS"] = "200"
    return Livedash(database_url, tmp_path, env)


# ------------------------------------------------------------------------------------- tiers
SESSION_BUDGET = float(os.environ.get("LIVEDASH_TEST_SESSION_TIMEOUT", "3600"))
"""Seconds the whole run may take before the watchdog dumps every stack and exits (0: off)."""
EXIT_BUDGET = float(os.environ.get("LIVEDASH_TEST_EXIT_TIMEOUT", "60"))
"""Seconds the process may take to exit once the session is over (threads left running)."""

LONG_RUNS = frozenset(
    {
        "test_daemon_fetch.py",  # one in-process daemon run shared by the module (4 s)
        "test_openai_daemon.py",  # the same with the fake OpenAI server (5 s)
        "test_daemon_queue_lease.py",  # daemons that wait out leases (6 s)
        "test_unattended.py",  # daemons against slow model servers, an outage (2-5 s each)
        "test_csv_rows.py::test_every_record_becomes_exactly_one_row_or_rejection",  # 4-9 s
    }
)
"""Tests (a module, or module::test) that run for seconds in-process: ``slow`` as well."""

_PG_NAMES = frozenset({"fresh_pg_database"})
_SUBPROCESS_NAMES = frozenset({"LIVEDASH", "subprocess"})
_current: pytest.Item | None = None


def _names(code: types.CodeType) -> set[str]:
    """Global and attribute names a code object (and the functions nested in it) refers to."""
    found = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _names(const)
    return found


def _reaches(roots: list[Callable[..., Any]], targets: frozenset[str]) -> bool:
    """True when any of ``roots``, or a function or class of the test package they call, names
    one of ``targets``: how a test's use of PostgreSQL or a subprocess is seen at collection."""
    home = {getattr(r, "__module__", "") for r in roots}
    seen: set[int] = set()
    stack: list[Any] = list(roots)
    while stack:
        obj = inspect.unwrap(stack.pop())
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if inspect.isclass(obj):
            stack.extend(v for v in vars(obj).values() if inspect.isfunction(v))
            continue
        code = getattr(obj, "__code__", None)
        if code is None:
            continue
        names = _names(code)
        if names & targets:
            return True
        scope = getattr(obj, "__globals__", {})
        for name in names:
            ref = scope.get(name)
            module = str(getattr(ref, "__module__", ""))
            if (inspect.isfunction(ref) or inspect.isclass(ref)) and (
                module in home or module.startswith("tests.")
            ):
                stack.append(ref)
    return False


def _fixture_functions(item: pytest.Item, skip: set[str] = frozenset()) -> list[Callable[..., Any]]:
    info = getattr(item, "_fixtureinfo", None)
    defs = getattr(info, "name2fixturedefs", {}) if info is not None else {}
    names = [n for n in getattr(item, "fixturenames", ()) if n not in skip]
    return [d.func for name in names for d in defs.get(name, ())]


def _uses_postgres(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "postgres" in params.values():
        return True
    if "pg_url" in getattr(item, "fixturenames", ()):
        return True
    # A fixture or a test that picks its database from a parameter (``database_url``,
    # ``backend``) and got "sqlite" is not looked into: its PostgreSQL branch is not taken.
    on_sqlite = {name for name, value in params.items() if value == "sqlite"}
    function = getattr(item, "function", None)
    roots = [function] if function is not None and "backend" not in on_sqlite else []
    return _reaches(roots + _fixture_functions(item, on_sqlite), _PG_NAMES)


def _uses_subprocess(item: pytest.Item) -> bool:
    if "livedash" in getattr(item, "fixturenames", ()):
        return True
    function = getattr(item, "function", None)
    roots = [function] if function is not None else []
    return _reaches(roots + _fixture_functions(item), _SUBPROCESS_NAMES)


def _long_run(item: pytest.Item) -> bool:
    name = getattr(item, "originalname", item.name)
    return item.path.name in LONG_RUNS or f"{item.path.name}::{name}" in LONG_RUNS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("postgres") is None and _uses_postgres(item):
            item.add_marker(pytest.mark.postgres)
        if item.get_closest_marker("slow") is None and (_long_run(item) or _uses_subprocess(item)):
            item.add_marker(pytest.mark.slow)


def _require_mark(mark: str, what: str) -> None:
    """Fails a test that does what only a test marked ``mark`` may do (the tiers rely on it)."""
    item = _current
    if item is not None and item.get_closest_marker(mark) is None:
        pytest.fail(
            f"{item.nodeid} {what} but is not marked {mark!r}: give it a fixture that says so "
            f"(pg_url, database_url, livedash) or @pytest.mark.{mark}",
            pytrace=False,
        )


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "subprocess.Popen" and _current is not None:
        argv = args[1]
        first = argv[0] if isinstance(argv, list | tuple) and argv else argv
        if str(first) == sys.executable:
            _require_mark("slow", "starts a Python subprocess")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    global _current
    _current = item
    try:
        return (yield)
    finally:
        _current = None


# ---------------------------------------------------------------------------------- watchdog
class _Watchdog:
    """Ends a run that hangs where pytest-timeout does not look: between tests, in session
    teardown, or at exit, where Python waits for every non-daemon thread (a leaked worker)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.deadline = float("inf")
        self.why = ""
        self.changed = threading.Condition()
        threading.Thread(target=self._run, name="test-session-watchdog", daemon=True).start()

    def arm(self, seconds: float, why: str) -> None:
        with self.changed:
            self.deadline, self.why = time.monotonic() + seconds, why
            self.changed.notify()

    def _run(self) -> None:
        with self.changed:
            while (left := self.deadline - time.monotonic()) > 0:
                self.changed.wait(min(left, 60.0))
            why = self.why
        os.write(self.fd, f"\n\n+++ watchdog: {why}; stacks of all threads:\n".encode())
        faulthandler.dump_traceback(file=self.fd, all_threads=True)
        os._exit(1)


_watchdog: _Watchdog | None = None


def pytest_sessionstart(session: pytest.Session) -> None:
    global _watchdog
    if _watchdog is not None:
        return  # a second session in this process (the hook and the thread exist once)
    sys.addaudithook(_audit)
    _watchdog = _Watchdog(os.dup(2))
    if SESSION_BUDGET > 0:
        _watchdog.arm(SESSION_BUDGET, f"the test session ran longer than {SESSION_BUDGET:.0f} s")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """The last hook: from here on only the interpreter's exit is left to watch."""
    if hasattr(config, "workerinput"):
        return  # a worker of pytest-xdist lives until the controller ends it; that one is watched
    if _watchdog is not None and EXIT_BUDGET > 0:
        _watchdog.arm(EXIT_BUDGET, f"the process did not exit {EXIT_BUDGET:.0f} s after the run")
