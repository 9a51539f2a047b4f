"""One daemon per SQLite file: SQLite has one writer at a time and no way for daemons to share
work, so a second `livedash run` on the same file is refused (PostgreSQL runs a fleet)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class AnotherDaemon(RuntimeError):
    pass


@contextlib.contextmanager
def single_daemon(database_file: Path) -> Iterator[None]:
    """Holds an exclusive lock beside the database file while the daemon runs. The kernel
    drops it when the process ends, however it ends: a crash never leaves a stale lock."""
    path = database_file.with_name(database_file.name + ".run-lock")
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise AnotherDaemon(
                f"another `livedash run` (pid {holder}) is using {database_file}; "
                "SQLite runs one daemon"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
