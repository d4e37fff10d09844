"""Exceptions of the worker, each with a docstring that is its default message.

Exit codes are named here too: the CLI maps outcomes to them, ops scripts depend on them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    """Process exit codes of `retention-worker`."""

    OK = 0
    RUN_FAILED = 1
    BAD_CONFIG = 2
    AWAITING_APPROVAL = 3


class RetentionError(Exception):
    """The retention worker failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration: where it is and what to fix."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class ConfigError(RetentionError):
    """The configuration is not valid."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"the configuration has {len(problems)} problem(s):\n{lines}")


class SettingsError(RetentionError):
    """A process setting (RETENTION_* environment variable) is missing or invalid."""


class StateError(RetentionError):
    """The state database failed. `transient` says whether a retry may cure it."""

    def __init__(self, message: str | None = None, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class AuditWriteError(StateError):
    """The audit trail could not be written; nothing was changed without its record."""
