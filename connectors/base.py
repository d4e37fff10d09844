"""The connector contract, documented once; every connector inherits it.

A connector knows tables, columns and keys; it knows nothing of customers' months,
rules or floors. The worker hands it a `Target` (which rows, of which table, before
which cutoff) and asks it to count, page through or change those rows.

Every connector guarantees:
- only rows of the target's tenant are read or changed (shared databases);
- `apply` changes one batch in one transaction: all of it or none of it;
- delete removes dependent rows before their parents and counts every row removed;
- anonymise is idempotent: rows already anonymised are neither selected nor counted;
- errors of the driver reach the caller as `ConnectorError` with the cause attached,
  and never carry a row's values.
"""

from __future__ import annotations

import abc
import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Key = tuple[Any, ...]


class ConnectorError(Exception):
    """The product database could not be used."""

    def __init__(self, message: str | None = None, *, transient: bool = False) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        self.transient = transient


class SchemaError(ConnectorError):
    """The product database does not match its mapping."""


class Change(enum.StrEnum):
    """What `apply` does to the rows of a batch."""

    DELETE = "delete"  # the rows and their dependents
    ANONYMISE = "anonymise"  # overwrite the masked columns
    UNLINK = "unlink"  # remove association rows (no dependents)


class Mask(enum.StrEnum):
    NULL = "null"
    FIXED = "fixed"
    YEAR = "year"
    POSTCODE_DIGITS = "postcode_digits"
    KEYED_HASH = "keyed_hash"


@dataclass(frozen=True)
class ColumnMask:
    column: str
    mask: Mask
    text: str | None = None


@dataclass(frozen=True)
class Dependent:
    """Rows of `table` whose `references` (own column → parent column) point at a parent."""

    table: str
    references: tuple[tuple[str, str], ...]
    columns: tuple[str, ...] = ()
    dependents: tuple[Dependent, ...] = ()


@dataclass(frozen=True)
class Table:
    """What the mapping expects of one table, for `verify`."""

    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    tenant_column: str | None = None
    dependents: tuple[Dependent, ...] = ()


@dataclass(frozen=True)
class Target:
    """The rows a rule acts on: a table, its tenant, a time basis and a cutoff.

    Rows are expired when `basis` is before the cutoff: `cutoff_date` for DATE columns,
    `cutoff_instant` (aware) for timestamps; naive timestamps are taken as UTC. With no
    `basis`, `everything` says whether all of the tenant's rows are expired. For
    anonymise, `masks` name the columns, and rows already masked are left out.
    `held` keys are never selected (legal holds).
    """

    table: Table
    tenant: Any | None
    basis: str | None
    cutoff_date: dt.date
    cutoff_instant: dt.datetime
    everything: bool = False
    masks: tuple[ColumnMask, ...] = ()
    held: frozenset[Key] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Backlog:
    """How many rows a target has expired now, and the oldest basis value among them."""

    count: int
    oldest: dt.date | dt.datetime | None


@dataclass(frozen=True)
class Problem:
    """A difference between the mapping and the live schema."""

    table: str
    column: str | None
    message: str
    fatal: bool = True

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        return f"{where}: {self.message}"


class Connector(abc.ABC):
    """Primitives over one product database. Open before use; close when done."""

    @abc.abstractmethod
    def open(self) -> None:
        """Connect (or create the engine); raise ConnectorError when unreachable."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release every connection. Safe to call twice."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise ConnectorError unless the database answers."""

    @abc.abstractmethod
    def verify(self, tables: Sequence[Table]) -> list[Problem]:
        """Compare the expected tables with the live schema; fatal problems stop a run."""

    @abc.abstractmethod
    def backlog(self, target: Target) -> Backlog:
        """Count the expired rows of a target (nothing is changed)."""

    @abc.abstractmethod
    def count_rows(self, target: Target) -> int:
        """Count the target tenant's rows in the target's table, expired or not (for the
        blast-radius breaker's share)."""

    @abc.abstractmethod
    def select_expired(self, target: Target, after: Key | None, limit: int) -> list[Key]:
        """Up to `limit` expired keys greater than `after`, in key order (keyset paging)."""

    @abc.abstractmethod
    def apply(self, target: Target, change: Change, keys: Sequence[Key]) -> Mapping[str, int]:
        """Change the rows with `keys` in one transaction; rows changed per table.

        Keys are re-checked against the target (tenant, cutoff, holds) inside the
        transaction: a row that stopped being expired is left alone.
        """

    def __enter__(self) -> Connector:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
