"""Domain errors: each names the rule that was broken, so the CLI can print it as is."""

from __future__ import annotations


class DomainError(Exception):
    """A command was refused because it would break an invariant."""


class StageNotReady(DomainError):
    pass


class StageAlreadyRunning(DomainError):
    pass


class StaleAttempt(DomainError):
    """A worker reported on an attempt that is no longer the current one."""


class InvalidReset(DomainError):
    pass


class InvalidTransition(DomainError):
    pass


class CompanyError(DomainError):
    pass
