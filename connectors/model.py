"""The value types of the connector contract: what the worker hands a connector and gets back.

A `Target` (which rows of which `Table`, of which tenant, before which cutoff, under which
masks, conditions and related rows), the time bases it names (`BasisSpec`, `Basis`), what
`apply` changed (`Applied`) and the schema as a connector reports it (`TableSchema`,
`ForeignKeyRef`, `Problem`, …). Plain frozen data without behaviour beyond small helpers; the
contract itself (the `Connector` ABC and its errors) lives in `connectors/base.py`, which
re-exports every name here.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Timeouts:
    """Bounds on every statement of a connector's sessions, in seconds.

    `lock_seconds`: the longest wait for a lock another session holds (PostgreSQL
    `lock_timeout`; MariaDB `lock_wait_timeout` and `innodb_lock_wait_timeout`, whole
    seconds, rounded up; SQLite's busy timeout). `statement_seconds`: the longest a
    statement may run (PostgreSQL `statement_timeout`; MariaDB `max_statement_time`,
    MySQL `max_execution_time` for SELECTs; on SQLite a progress handler that interrupts
    it). The worker's defaults come from RETENTION_LOCK_TIMEOUT_SECONDS and
    RETENTION_STATEMENT_TIMEOUT_SECONDS, overridden per product by `timeouts:`.
    """

    lock_seconds: float = 30.0
    statement_seconds: float = 600.0

    def __post_init__(self) -> None:
        if not (self.lock_seconds > 0 and self.statement_seconds > 0):
            raise ValueError("timeouts must be positive numbers of seconds")


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
    PSEUDONYM = "pseudonym"


@dataclass(frozen=True)
class ColumnMask:
    """How one column is anonymised: `text` for FIXED, `length` (characters) for PSEUDONYM."""

    column: str
    mask: Mask
    text: str | None = None
    length: int | None = None


@dataclass(frozen=True)
class Dependent:
    """Rows of `table` whose `references` (own column → parent column) point at a parent."""

    table: str
    references: tuple[tuple[str, str], ...]
    columns: tuple[str, ...] = ()
    dependents: tuple[Dependent, ...] = ()


class RefAction(enum.StrEnum):
    """What a foreign key does to the rows that reference a deleted (or updated) row."""

    CASCADE = "CASCADE"  # deletes them too
    SET_NULL = "SET NULL"
    SET_DEFAULT = "SET DEFAULT"
    RESTRICT = "RESTRICT"  # refuses the delete
    NO_ACTION = "NO ACTION"  # refuses it too (at the end of the statement, or at COMMIT)

    @property
    def blocks(self) -> bool:
        """True when a referenced row cannot go while a reference to it remains."""
        return self in (RefAction.RESTRICT, RefAction.NO_ACTION)


@dataclass(frozen=True)
class ForeignKeyRef:
    """A foreign key of `table` (`columns`) that points at `referred_table` (`referred_columns`,
    pairwise in the same order), with what it does when a referred row is deleted or its
    referred columns are updated.

    Read from the live schema; an action the database does not report is its default: NO
    ACTION on PostgreSQL and SQLite, RESTRICT on MariaDB/MySQL (InnoDB treats the two alike).
    `name` is the constraint's name (None where SQLite keeps none). `schema` is None for a
    key of a table of the database's default schema; for a key of a table outside it that
    points into it (PostgreSQL: another schema; MariaDB/MySQL: another database of the
    server), that table's schema (connectors/sqloutside.py).
    """

    name: str | None
    table: str
    columns: tuple[str, ...]
    referred_table: str
    referred_columns: tuple[str, ...]
    on_delete: RefAction = RefAction.NO_ACTION
    on_update: RefAction = RefAction.NO_ACTION
    schema: str | None = None

    @property
    def qualified(self) -> str:
        """`table`, prefixed with its `schema` (`other.memo`) when it has one."""
        return self.table if self.schema is None else f"{self.schema}.{self.table}"

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """(own column, referred column) pairs, like a dependent's `references`."""
        return tuple(zip(self.columns, self.referred_columns, strict=True))

    def __str__(self) -> str:
        own = ", ".join(self.columns)
        theirs = ", ".join(self.referred_columns)
        return (
            f"{self.qualified}({own}) → {self.referred_table}({theirs}) ON DELETE {self.on_delete}"
        )


class ColumnKind(enum.StrEnum):
    """What a column holds, as far as masks care."""

    TEXT = "text"  # CHAR, VARCHAR, TEXT (not an enumeration)
    CHOICE = "choice"  # an ENUM type: only its values fit
    DATE = "date"
    DATETIME = "datetime"
    INTEGER = "integer"
    NUMBER = "number"  # NUMERIC, FLOAT
    BOOLEAN = "boolean"
    UUID = "uuid"
    OTHER = "other"  # binary, JSON, intervals, arrays, …
    UNKNOWN = "unknown"  # a type SQLAlchemy does not know: only NULL and uniqueness are checked


@dataclass(frozen=True)
class ColumnInfo:
    """One column as the live schema declares it.

    `length` is the declared maximum in characters (None: unbounded or not text); `padded`
    says that it is a fixed-width CHAR(n), which PostgreSQL pads with spaces; `choices` are an
    ENUM's values; `type_name` is the type as the database reports it, for messages.
    """

    name: str
    kind: ColumnKind
    type_name: str
    nullable: bool
    length: int | None = None
    padded: bool = False
    choices: tuple[str, ...] = ()
    has_default: bool = False  # a DEFAULT the database fills in (ON DELETE SET DEFAULT)


@dataclass(frozen=True)
class UniqueKey:
    """Columns no two rows may share: the primary key, a UNIQUE constraint or unique index.

    `nulls_distinct` (the default everywhere; PostgreSQL 15+ `NULLS NOT DISTINCT` turns it
    off): rows with a NULL in one of the columns never clash. An index on an expression lists
    the columns the expression names.
    """

    name: str | None
    columns: tuple[str, ...]
    nulls_distinct: bool = True
    primary: bool = False


@dataclass(frozen=True)
class TableSchema:
    """A table's columns, unique keys and own foreign keys, read from the live schema."""

    name: str
    columns: Mapping[str, ColumnInfo]
    unique: tuple[UniqueKey, ...] = ()
    references: tuple[ForeignKeyRef, ...] = ()  # this table's foreign keys to others


@dataclass(frozen=True)
class FirstOf:
    """A time basis: the first of these columns of the row that is not NULL (COALESCE)."""

    columns: tuple[str, ...]


@dataclass(frozen=True)
class Aggregated:
    """A time basis read from a related table: the latest (or earliest) `column` over the
    rows of `table` whose `references` (own column → subject column) point at the row.

    `latest`: a related row with no value means "not ended" and the row is kept ("all
    ended" semantics); `earliest` takes the first non-NULL value. A row with no related rows
    falls back to its own column `if_none`, or is kept when that is None.
    """

    table: str
    references: tuple[tuple[str, str], ...]
    column: str
    latest: bool = True
    if_none: str | None = None


BasisSpec = str | FirstOf | Aggregated
"""A time basis: a column of the row, the first of several, or a related table's aggregate."""


class Op(enum.StrEnum):
    """The test of a row condition."""

    EQ = "equals"
    NE = "not_equals"
    IN = "in"
    NOT_IN = "not_in"
    IS_NULL = "is_null"
    NOT_NULL = "not_null"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"


@dataclass(frozen=True)
class Condition:
    """A test of one column of the target's table; false on NULL (but for IS_NULL)."""

    column: str
    op: Op
    value: Any = None


@dataclass(frozen=True)
class RelatedRows:
    """Rows of another table that point at each anonymised subject row (`references`: own
    column → subject column): deleted, or anonymised with `masks`, in the same transaction."""

    table: str
    references: tuple[tuple[str, str], ...]
    change: Change
    masks: tuple[ColumnMask, ...] = ()


@dataclass(frozen=True)
class Table:
    """What the mapping expects of one table, for `verify`.

    `key` is empty for a table without a key (delete in bounded batches only). `bases` are
    the time bases of the table beyond its own `dates` columns (related aggregates);
    `conditions` the row conditions its rules test; `related` the related tables of its
    rules.
    """

    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    tenant_column: str | None = None
    dependents: tuple[Dependent, ...] = ()
    bases: tuple[Aggregated, ...] = ()
    conditions: tuple[Condition, ...] = ()
    related: tuple[RelatedRows, ...] = ()


@dataclass(frozen=True)
class Target:
    """The rows a rule acts on: a table, its tenant, a time basis and a cutoff.

    Rows are expired when `basis` holds a readable date from `EARLIEST_BASIS` on that is
    before the cutoff: `cutoff_date` for DATE columns, `cutoff_instant` (aware) for
    timestamps; naive timestamps are taken as UTC. `tenant` is the customer's value as its
    file gives it (an int or a str); the connector converts it to the column's type. With no
    `basis`, `everything` says whether all of the tenant's rows are expired. For
    anonymise, `masks` name the columns, and rows already masked are left out.
    `held` keys are never selected (legal holds). `also` are further cutoffs the row must be
    past as well: those of other rules that touch the same columns (the longest retention
    wins; worker/policy.py). `where` are row conditions every selected row meets; `related`
    the rows of other tables an anonymise changes with each subject row. `gone`, only in a
    plan (a dry run), are the targets of the pair's earlier delete rules: a time basis read
    from a related table leaves out the rows they would delete, as the run (which deletes
    them first) reads it, so a plan counts what the run changes.
    """

    table: Table
    tenant: Any | None
    basis: BasisSpec | None
    cutoff_date: dt.date
    cutoff_instant: dt.datetime
    everything: bool = False
    masks: tuple[ColumnMask, ...] = ()
    held: frozenset[Key] = field(default_factory=frozenset)
    also: tuple[Basis, ...] = ()
    where: tuple[Condition, ...] = ()
    related: tuple[RelatedRows, ...] = ()
    gone: tuple[Target, ...] = ()


@dataclass(frozen=True)
class Basis:
    """Another rule's time basis and cutoff that a row must be past too (see Target.also).

    With `column` None (a customer date), `everything` says whether every row is past it.
    """

    column: BasisSpec | None
    cutoff_date: dt.date
    cutoff_instant: dt.datetime
    everything: bool = False


class Applied(Mapping[str, int]):
    """What one `apply` changed: rows per table (a read-only mapping, dependents included;
    a table with nothing changed is left out), the subject keys changed, and the keys left
    alone because a hold covered them."""

    def __init__(
        self,
        rows: Mapping[str, int] | None = None,
        keys: Sequence[Key] = (),
        held: Sequence[Key] = (),
    ) -> None:
        self._rows = {t: int(n) for t, n in (rows or {}).items() if n}  # tables changed only
        self.changed_keys: tuple[Key, ...] = tuple(keys)
        self.held_keys: tuple[Key, ...] = tuple(held)
        # A set-based delete (`Connector.delete_next`) that deleted every row it chose and
        # chose fewer than its limit: no expired row after its `after` was left at its
        # snapshot. False wherever that is not known.
        self.whole = False

    def __getitem__(self, table: str) -> int:
        return self._rows[table]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return (
            f"Applied(rows={self._rows!r}, changed={len(self.changed_keys)}, "
            f"held={len(self.held_keys)})"
        )


Guard = Callable[[Sequence[Key]], Set[Key]]
"""Given the keys a batch is about to change (locked), the ones a legal hold now covers."""

Prepare = Callable[[Applied], None]
"""Told what a batch changed, before COMMIT; raising rolls the batch back."""


@dataclass(frozen=True)
class Backlog:
    """How many rows a target has expired now, and the oldest basis value among them."""

    count: int
    oldest: dt.date | dt.datetime | None


@dataclass(frozen=True)
class DateQuality:
    """What one time basis column holds besides clean dates (all rows, every tenant).

    `unknown`: rows whose value is not NULL but no readable date from `EARLIEST_BASIS` on
    (zero dates, empty or unreadable text, `-infinity`/`infinity`, placeholders before
    1900): they are kept, never expired. `converted`: rows read correctly from another
    form (SQLite: text with a `T` or a zone, numbers), compared as UTC instants.
    """

    unknown: int
    converted: int = 0


@dataclass(frozen=True)
class Problem:
    """A difference between the mapping and the live schema.

    `part` names the field of a dependent the problem is about (`"references"`), so
    that validate can point at it; None when the table or column says it all.
    """

    table: str
    column: str | None
    message: str
    fatal: bool = True
    part: str | None = None

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        return f"{where}: {self.message}"
