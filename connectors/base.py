"""The connector contract, documented once; every connector inherits it.

A connector knows tables, columns and keys; it knows nothing of customers' months,
rules or floors. The worker hands it a `Target` (which rows, of which table, before
which cutoff) and asks it to count, page through or change those rows.

Every connector guarantees:
- only rows of the target's tenant are read or changed (shared databases), in every
  statement: counts, selections, the re-check inside `apply`, anonymise updates and the
  deletion of dependents (and their dependents) whose table has the tenant column;
- the tenant value is compared exactly as the database stores it: it is converted to the
  tenant column's type first, and a value that does not convert exactly (`"01042"` or
  `"1042abc"` for an integer column, a fraction, `true`) raises `TenantValueError`; text is
  compared so that no collation widens the match (`'KDV-A'` and `'kdv-á'` never match
  `'kdv-a'`, nor `'kdv-a '`);
- a time basis that does not hold a readable date from `EARLIEST_BASIS` on (NULL, a zero
  date, an empty or unreadable text, `-infinity`, a placeholder before 1900) is never
  expired, never counted as the oldest and never crashes a read; `date_quality` counts such
  values;
- instants are compared in UTC whatever the server's or the URL's session settings;
- every statement runs under the connector's `Timeouts`: waiting for a lock longer than
  `lock_seconds` raises `LockTimeout`, running longer than `statement_seconds` raises
  `StatementTimeout` (neither is transient: a retry would wait just as long);
- `apply` changes one batch in one transaction: all of it or none of it. Inside that
  transaction, after the rows are locked and before anything is committed, it asks the
  caller's `guard` which of the keys a legal hold now covers (those are left alone), and
  hands the caller the exact keys and rows per table it changed (`prepare`), so the audit
  trail records them before the change is committed. When the outcome of COMMIT itself is
  unknown (the reply was lost), it raises `AmbiguousCommit` carrying what the transaction
  would have changed; `remaining` then tells whether it did;
- delete removes dependent rows before their parents and counts every row removed, those
  the database's foreign keys delete or set to NULL with them included (`preview` too);
- anonymise is idempotent: rows already anonymised are neither selected nor counted;
- errors of the driver reach the caller as `ConnectorError` with the cause attached,
  and never carry a row's values;
- `foreign_keys_to` and `table_schema` report the schema as the database enforces it:
  foreign keys with their ON DELETE / ON UPDATE actions (enforced on SQLite too: the SQL
  connector turns them on in every session), column types, widths, NOT NULL and unique
  keys, so that `validate` can refuse what a run would fail on.
"""

from __future__ import annotations

import abc
import datetime as dt
import enum
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.sqlexplain import Explained

Key = tuple[Any, ...]

# A time basis before this date is a placeholder ("unknown"), not a very old record: such a
# row is kept, never expired. See docs/configuration.md, "Odd values in a time basis".
EARLIEST_BASIS = dt.date(1900, 1, 1)


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
    `name` is the constraint's name (None where SQLite keeps none).
    """

    name: str | None
    table: str
    columns: tuple[str, ...]
    referred_table: str
    referred_columns: tuple[str, ...]
    on_delete: RefAction = RefAction.NO_ACTION
    on_update: RefAction = RefAction.NO_ACTION

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """(own column, referred column) pairs, like a dependent's `references`."""
        return tuple(zip(self.columns, self.referred_columns, strict=True))

    def __str__(self) -> str:
        own = ", ".join(self.columns)
        theirs = ", ".join(self.referred_columns)
        return f"{self.table}({own}) → {self.referred_table}({theirs}) ON DELETE {self.on_delete}"


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
    def foreign_keys_to(self, table: str) -> list[ForeignKeyRef]:
        """The foreign keys of other tables that point at `table` (a table's references to
        itself are left out), in the order of the referencing table's name and the
        constraint's columns. Empty for a connector without foreign keys. Raises
        `ConnectorError` when the schema cannot be read."""

    @abc.abstractmethod
    def table_schema(self, table: str) -> TableSchema | None:
        """The live columns, unique keys and foreign keys of `table`, for checks of masks;
        None when the connector has no declared schema (in memory). Raises `SchemaError`
        when the table does not exist."""

    @abc.abstractmethod
    def backlog(self, target: Target) -> Backlog:
        """Count the expired rows of a target (nothing is changed).

        With `basis=None` and `everything=True` this counts all the tenant's rows of the
        table. Raises `TenantValueError` when the tenant value does not convert exactly.
        """

    @abc.abstractmethod
    def preview(self, target: Target, change: Change) -> dict[str, int]:
        """Rows per table that `change` of every expired row of `target` would change now,
        as `apply` counts them: dependents, related rows and rows foreign keys cascade to
        included; tables with none left out. Changes nothing (for `plan`)."""

    @abc.abstractmethod
    def date_quality(self, table: str, column: str) -> DateQuality:
        """Count the values of a time basis column that are not clean dates (all tenants)."""

    @abc.abstractmethod
    def count_rows(self, target: Target) -> int:
        """Count the target tenant's rows in the target's table, expired or not (for the
        blast-radius breaker's share)."""

    @abc.abstractmethod
    def select_expired(self, target: Target, after: Key | None, limit: int) -> list[Key]:
        """Up to `limit` expired keys greater than `after`, in key order (keyset paging)."""

    @abc.abstractmethod
    def apply(
        self,
        target: Target,
        change: Change,
        keys: Sequence[Key],
        *,
        guard: Guard | None = None,
        prepare: Prepare | None = None,
    ) -> Applied:
        """Change the rows with `keys` in one transaction; what changed, per table and key.

        Keys are re-checked against the target (tenant, cutoff, `held`) inside the
        transaction: a row that stopped being expired is left alone. With `guard`, keys it
        returns are left alone too (a hold placed while the batch ran). `prepare` is called
        after the change and before COMMIT; raising in it rolls everything back. Raises
        `AmbiguousCommit` when COMMIT's outcome is unknown.
        """

    @abc.abstractmethod
    def delete_expired(
        self, target: Target, limit: int, *, prepare: Prepare | None = None
    ) -> Applied:
        """A table without a key (`Table.key` empty): delete up to `limit` expired rows in
        one transaction. `changed_keys` are the deleted rows' values (every column, in table
        order), which name them in the audit trail; `prepare` is called before COMMIT.
        Raises `AmbiguousCommit` when COMMIT's outcome is unknown."""

    @abc.abstractmethod
    def remaining(self, target: Target, change: Change, keys: Sequence[Key]) -> set[Key]:
        """Which of `keys` a change has not reached: rows of the tenant still there (for
        anonymise: still not masked). The cutoff is not applied: this answers whether an
        earlier `apply` of these keys took effect. For a table without a key, `keys` are rows'
        values (every column, NULLs compared as equal)."""

    @abc.abstractmethod
    def scan_keys(self, target: Target, after: Key | None, limit: int) -> list[Key]:
        """Up to `limit` keys of all the tenant's rows of the table, expired or not, in key
        order after `after` (to find keys from their keyed hashes after a crash). For a table
        without a key: rows' values (every column), all of them at once (`after` is None)."""

    @abc.abstractmethod
    def find_key(self, target: Target, parts: Sequence[str]) -> Key | None:
        """The key of the tenant's row that `parts` (texts, as an operator types them) name,
        as the database stores it; None when no row has it. Each part is read as its key
        column's type (`07` is 7, a UUID in any case or without hyphens, a date-time with a
        space or a `T`); a part that is no value of that type raises SchemaError."""

    def explain(self, target: Target, limit: int) -> Explained | None:
        """The database's plan for the selection of `target`'s first batch of `limit` rows
        (see `connectors.sqlexplain`); None for a connector without a query planner.
        Raises `ConnectorError` when the database refuses to explain."""
        return None

    def identity(self) -> tuple[str, ...] | None:
        """Which database this is, as the server says (connectors.identity), to find two
        customers' databases that are one; None when unknown. Raises ConnectorError."""
        return None

    def batch_limit(self, key_width: int) -> int:
        """The most keys one batch may hold within the driver's bind-parameter limit."""
        return 50_000

    def __enter__(self) -> Connector:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
