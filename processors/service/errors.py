"""The error a use case raises for a user's mistake, and the exit codes scripts rely on."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    """The request was understood but refused: unknown company or session, a domain rule."""
    USAGE = 2
    DATABASE = 3
    """The database is unreachable or not initialised."""
    SOURCE = 4
    """A CSV source could not be read."""
    REJECTED_ROWS = 5
    """`import --strict` found rows it had to reject."""
    TAMPERED = 6
    """`audit verify` found the log altered, cut or inserted into."""
    DIFFERS = 7
    """`projections verify` found a projection that differs from the log's rebuild."""


class ServiceError(Exception):
    """A refusal worth one line and a hint; ``code`` is the process exit code the CLI uses."""

    def __init__(self, message: str, hint: str | None = None, code: ExitCode = ExitCode.FAILED):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
