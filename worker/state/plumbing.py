"""What the parts of the state store (`RunLog`, `AuditLog`) need from `StateStore`.

`worker.state.store.StateStore` supplies them: the engine, the error wrapping (`StateError`
naming the database by its masked URL), write transactions that carry queued work
(worker/state/gather.py) and the retry budget for transient errors.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from sqlalchemy import Connection, Engine

T = TypeVar("T")


class Plumbing(abc.ABC):
    """The engine, error wrapping, write transactions and retries of the state database."""

    url: str  # the database's URL with the password masked
    _engine: Engine

    @abc.abstractmethod
    def _errors(self, doing: str) -> AbstractContextManager[None]:
        """A context that reraises driver errors as `StateError`s saying what was `doing`."""

    @abc.abstractmethod
    def _write(self, doing: str) -> AbstractContextManager[Connection]:
        """One write transaction (carrying the work `write_later` queued before it)."""

    @abc.abstractmethod
    def _retrying(self, fn: Callable[[], T]) -> T:
        """Run `fn` (one whole transaction), again on transient errors within the budget."""
