"""Shared fixtures: real SQLite files, real PostgreSQL databases, the real `livedash` command."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

PG_HOST = os.environ.get("LIVEDASH_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("LIVEDASH_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("LIVEDASH_TEST_PG_USER", "postgres")
REPO = Path(__file__).resolve().parent.parent
SAMPLE_CSV = REPO / "tests" / "data" / "livedash-sample.csv"  # a copy of shared/data
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
