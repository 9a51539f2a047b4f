"""Resolving a company's credential reference at the moment a request is made."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from domain.company import CredentialRef

SecretResolver = Callable[[str], str | None]
"""The value of a named secret, or None when it is not set. The composition root hands one in
(the CLI's is a snapshot of its environment, `cli.secrets.environment_secrets`), so nothing
under processors/ reads the environment itself; a test passes ``{"NAME": "value"}.get``."""


class CredentialError(Exception):
    pass


def resolve_password(ref: CredentialRef | None, secrets: SecretResolver) -> str | None:
    """The secret behind a reference: an ``env`` reference through ``secrets``, a file read now."""
    if ref is None:
        return None
    if ref.kind == "env":
        value = secrets(ref.name)
        if value is None:
            raise CredentialError(f"environment variable {ref.name} is not set")
        return value
    try:
        return Path(ref.name).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise CredentialError(f"cannot read password file {ref.name}: {e.strerror}") from None
