"""Where the CLI's secrets come from: a snapshot of the environment it started with."""

from __future__ import annotations

from collections.abc import Mapping

from processors.net.credentials import SecretResolver


def environment_secrets(environ: Mapping[str, str]) -> SecretResolver:
    """A resolver over a copy of ``environ`` taken now: later changes to the process
    environment do not leak into a running daemon, and nothing else needs ``os.environ``."""
    snapshot = dict(environ)
    return snapshot.get
