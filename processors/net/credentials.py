"""Resolving a company's credential reference at the moment a request is made."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from domain.company import CredentialRef


class CredentialError(Exception):
    pass


def resolve_password(ref: CredentialRef | None, env: Mapping[str, str]) -> str | None:
    """The secret behind a reference; ``env`` is the snapshot the CLI took at start."""
    if ref is None:
        return None
    if ref.kind == "env":
        value = env.get(ref.name)
        if value is None:
            raise CredentialError(f"environment variable {ref.name} is not set")
        return value
    try:
        return Path(ref.name).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise CredentialError(f"cannot read password file {ref.name}: {e.strerror}") from None
