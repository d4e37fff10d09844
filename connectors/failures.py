"""The errors of a connector: what a product database's failure means to the worker.

`ConnectorError` and its kinds, raised by every connector (connectors/base.py re-exports
them; import them from there). `transient` says whether a retry may succeed (worker/retry.py).
"""

from __future__ import annotations

from connectors.model import Applied


class ConnectorError(Exception):
    """The product database could not be used."""

    def __init__(self, message: str | None = None, *, transient: bool = False) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        self.transient = transient


class SchemaError(ConnectorError):
    """The product database does not match its mapping."""


class TenantValueError(SchemaError):
    """The customer's tenant value does not convert exactly to the tenant column's type."""


class AmbiguousCommit(ConnectorError):
    """COMMIT was sent but its outcome is unknown: the connection broke before the reply.

    `applied` is what the transaction would have changed; whether it did is found with
    `Connector.remaining(target, applied.changed_keys)`. Never retry such a batch blindly: a retry
    finds the rows gone and would count nothing for a batch that changed them.
    """

    def __init__(self, message: str, applied: Applied) -> None:
        super().__init__(message, transient=False)
        self.applied = applied


class RowsRefused(ConnectorError):
    """The database refused a change because of some of its rows (an integrity constraint: a
    foreign key still referencing a row, CHECK, UNIQUE, NOT NULL); nothing was changed. The
    worker splits such a batch to find those rows (worker/isolation.py)."""


class LockTimeout(ConnectorError):
    """A statement waited longer than the lock timeout for a lock another session holds."""


class StatementTimeout(ConnectorError):
    """A statement ran longer than the statement timeout and was cancelled."""


# Named as connectors.base's, where every caller imports them from: tracebacks and log lines
# (worker/tracebacks.py) keep calling them `connectors.base.ConnectorError` and so on.
for _error in (
    ConnectorError,
    SchemaError,
    TenantValueError,
    AmbiguousCommit,
    RowsRefused,
    LockTimeout,
    StatementTimeout,
):
    _error.__module__ = "connectors.base"
