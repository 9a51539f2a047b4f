"""The suite's own guards, each tried on a small generated test file run by a real pytest:
a hung test is ended by the timeout, a process that cannot exit is ended by the watchdog, and
the tiers (``postgres``, ``slow``) are applied from what a test uses and enforced when it runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.conftest import REPO

BOUND = 90.0
"""Seconds a generated run may take: it ends in a few; without the guard it never would."""


def pytest_run(tmp_path: Path, source: str, *args: str, **env: str) -> tuple[int, str, float]:
    """Runs pytest on ``source`` with this repository's configuration and fixtures; returns
    (exit code, stdout + stderr, seconds)."""
    (tmp_path / "test_generated.py").write_text(textwrap.dedent(source), encoding="utf-8")
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "test_generated.py",
            "-c",
            str(REPO / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def test_a_test_hung_in_its_teardown_is_ended_by_the_timeout(tmp_path: Path) -> None:
    """The hung run's teardown waited in a lock; an interruption raised there can be swallowed
    (or, in C code, never delivered), so the timeout must not depend on the main thread."""
    code, output, _ = pytest_run(
        tmp_path,
        """
        import threading
        import pytest

        @pytest.fixture
        def server():
            yield
            stopped = threading.Event()
            while not stopped.is_set():  # waits, and waits again when interrupted
                try:
                    stopped.wait()
                except BaseException:
                    pass

        def test_uses_a_server_that_never_stops(server):
            pass
        """,
        "-o",
        "timeout=2",
    )
    assert code != 0
    assert "Timeout" in output and "stopped.wait()" in output  # and which wait it was


def test_a_process_that_cannot_exit_after_the_run_is_ended_by_the_watchdog(
    tmp_path: Path,
) -> None:
    """Python joins every non-daemon thread at exit; a leaked one would hold `make test` open
    after its last line, beyond any per-test timeout."""
    code, output, _ = pytest_run(
        tmp_path,
        """
        import threading

        def test_leaves_a_worker_behind():
            threading.Thread(target=threading.Event().wait, name="leaked").start()
        """,
        LIVEDASH_TEST_EXIT_TIMEOUT="5",
    )
    assert "1 passed" in output
    assert code == 1
    assert "did not exit 5 s after the run" in output


def test_the_tiers_follow_what_a_test_uses(tmp_path: Path) -> None:
    source = """
        import importlib
        import sys
        import pytest
        import tests.conftest as shared
        from tests.conftest import fresh_pg_database

        def make_database():
            with fresh_pg_database() as url:
                return url

        @pytest.fixture
        def legacy():
            return make_database()

        def test_in_memory():
            pass

        def test_on_both(database_url):
            pass

        def test_on_postgres(pg_url):
            pass

        def test_through_a_helper():
            make_database()

        def test_through_a_fixture(legacy):
            pass

        @pytest.mark.parametrize("backend", ["sqlite", "postgres"])
        def test_per_backend(backend, tmp_path):
            if backend == "postgres":
                make_database()

        def test_the_command(livedash):
            pass

        def test_hidden_postgres():
            with getattr(shared, "fresh_pg" + "_database")():
                pass

        def test_hidden_subprocess():
            run = getattr(importlib.import_module("sub" + "process"), "run")
            run([sys.executable, "-c", "pass"], timeout=30)
    """
    code, output, _ = pytest_run(
        tmp_path, source, "-m", "not postgres and not slow", "--collect-only"
    )
    fast = sorted(line.split("::")[1] for line in output.splitlines() if "::" in line)
    assert fast == [
        "test_hidden_postgres",
        "test_hidden_subprocess",
        "test_in_memory",
        "test_on_both[sqlite]",
        "test_per_backend[sqlite]",
    ], output
    # What the collection cannot see is caught when it happens: the test fails, saying why.
    code, output, _ = pytest_run(tmp_path, source, "-k", "hidden")
    assert code == 1
    assert "test_hidden_postgres uses PostgreSQL but is not marked 'postgres'" in output
    assert "test_hidden_subprocess starts a Python subprocess but is not marked 'slow'" in output
