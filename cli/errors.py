"""The CLI's errors are the service's: one line with a hint, and an exit code scripts rely on."""

from __future__ import annotations

from processors.service.errors import ExitCode, ServiceError

CliError = ServiceError
"""The name the commands use; a refusal raised by a use case is printed the same way."""

__all__ = ["CliError", "ExitCode", "ServiceError"]
