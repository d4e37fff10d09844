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
- `remaining` answers for a transaction still in flight too (another process's batch, its
  intent recorded and its COMMIT not yet done): it reads the rows under the lock a batch
  takes, so it waits for that transaction to end and answers with what it left; a wait
  longer than `lock_seconds` raises `LockTimeout` (the in-memory connector changes rows in
  place: nothing is in flight);
- delete removes dependent rows before their parents and counts every row removed, those
  the database's foreign keys delete or set to NULL with them included (`preview` too);
- anonymise is idempotent: rows already anonymised are neither selected nor counted;
- errors of the driver reach the caller as `ConnectorError` with the cause attached,
  and never carry a row's values;
- `foreign_keys_to` and `table_schema` report the schema as the database enforces it:
  foreign keys with their ON DELETE / ON UPDATE actions (enforced on SQLite too: the SQL
  connector turns them on in every session), column types, widths, NOT NULL and unique
  keys, so that `validate` can refuse what a run would fail on.

The value types named here (`Target`, `Table`, `Applied`, `TableSchema`, …) live in
`connectors/model.py`; this module re-exports them, and holds the errors and the `Connector` ABC.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from connectors.failures import (
    AmbiguousCommit,
    ConnectorError,
    LockTimeout,
    RowsRefused,
    SchemaError,
    StatementTimeout,
    TenantValueError,
)
from connectors.model import (
    Aggregated,
    Applied,
    Backlog,
    Basis,
    BasisSpec,
    Change,
    ColumnInfo,
    ColumnKind,
    ColumnMask,
    Condition,
    DateQuality,
    Dependent,
    FirstOf,
    ForeignKeyRef,
    Guard,
    Key,
    Mask,
    Op,
    Prepare,
    Problem,
    RefAction,
    RelatedRows,
    Table,
    TableSchema,
    Target,
    Timeouts,
    UniqueKey,
)

if TYPE_CHECKING:
    from connectors.sqlexplain import Explained


__all__ = [
    "EARLIEST_BASIS",
    "Aggregated",
    "AmbiguousCommit",
    "Applied",
    "Backlog",
    "Basis",
    "BasisSpec",
    "Change",
    "ColumnInfo",
    "ColumnKind",
    "ColumnMask",
    "Condition",
    "Connector",
    "ConnectorError",
    "DateQuality",
    "Dependent",
    "FirstOf",
    "ForeignKeyRef",
    "Foresight",
    "Guard",
    "Key",
    "LockTimeout",
    "Mask",
    "Op",
    "Prepare",
    "Problem",
    "RefAction",
    "RelatedRows",
    "RowsRefused",
    "SchemaError",
    "SchemaRead",
    "StatementTimeout",
    "Table",
    "TableSchema",
    "Target",
    "TenantValueError",
    "Timeouts",
    "UniqueKey",
]

# A time basis before this date is a placeholder ("unknown"), not a very old record: such a
# row is kept, never expired. See docs/configuration.md, "Odd values in a time basis".
EARLIEST_BASIS = dt.date(1900, 1, 1)


@dataclass(frozen=True)
class Foresight:
    """What `Connector.foresee` finds for a rule in a dry run.

    `changed`: rows per table a run would change (as `Connector.preview` counts them, the
    rows it would block and what they reach left out); `blocked`: eligible rows of the
    subject's table a run would block at least (they stay: `batch.blocked`); `reasons`:
    those rows per reason, a text naming keys and tables, never a value (a row may count
    under several reasons).
    """

    changed: dict[str, int]
    blocked: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SchemaRead:
    """How a connector's latest `verify_each` knew the schema: `stamp`, the catalog's
    fingerprint of the tables verified (connectors/sqlstamp.py); `borrowed`, True when
    another connector of the process read it (at most `reuse_seconds` before) and this
    one made no query."""

    stamp: str
    borrowed: bool


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

    def verify_each(
        self, tables: Sequence[Table], *, reuse_seconds: float = 0.0
    ) -> list[list[Problem]]:
        """`verify` of each table on its own, in order (a run fails only the rules of a
        table that drifted). A connector may read the schema of them all at once.

        `reuse_seconds` > 0: a connector that fingerprints the catalog may answer from a
        fingerprint of the same tables another connector of the process read at most that
        long ago, without a query (`schema_read().borrowed`); it then refuses to change rows
        until a `verify_each` without it ran (worker/drift.py `SchemaCheck`)."""
        return [self.verify([table]) for table in tables]

    def schema_read(self) -> SchemaRead | None:
        """How the latest `verify_each` knew the schema: the catalog fingerprint and whether
        it was borrowed; None for a connector that keeps no fingerprint (then every verify
        reads the schema itself)."""
        return None

    @abc.abstractmethod
    def foreign_keys_to(self, table: str) -> list[ForeignKeyRef]:
        """The foreign keys of other tables that point at `table` (a table's references to
        itself are left out), in the order of the referencing table's name and the
        constraint's columns. Empty for a connector without foreign keys. Raises
        `ConnectorError` when the schema cannot be read."""

    def every_foreign_key_to(self, table: str) -> list[ForeignKeyRef]:
        """`foreign_keys_to` with the table's own keys to itself too (a connector that knows
        them adds them). Raises `ConnectorError` when the schema cannot be read."""
        return self.foreign_keys_to(table)

    def outside_keys_to(self, table: str) -> list[ForeignKeyRef]:
        """The foreign keys of tables outside the database's default schema (another
        PostgreSQL schema, another MariaDB database of the server) that point at `table`,
        each with its `schema` set; none by default. The worker leaves the rows an acting one
        references (connectors/sqloutside.py). Raises `ConnectorError` when the schema cannot
        be read."""
        return []

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

    def foresee(self, target: Target, change: Change) -> Foresight:
        """`preview`, and the eligible rows a run would block because of the database's ON
        DELETE / ON UPDATE keys (connectors/sqlforesee.py), for `plan`. Changes nothing. A
        connector without foreign keys blocks nothing: `preview` alone. Raises what
        `preview` raises."""
        return Foresight(self.preview(target, change))

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

    def delete_next(
        self,
        target: Target,
        after: Key | None,
        limit: int,
        *,
        guard: Guard | None = None,
        prepare: Prepare | None = None,
    ) -> Applied | None:
        """Select and delete up to `limit` expired rows of a keyed target whose key follows
        `after`, in one statement and one transaction (the set-based batch); what changed.

        The guard sees the deleted keys before COMMIT: when it names any, everything is
        rolled back and None is returned. None also when the connector or the target cannot
        (the default: dependents to delete first, foreign keys pointing at the table, no
        such statement): the caller then selects a page and `apply`s it. `prepare` and
        `AmbiguousCommit` as in `apply`.
        """
        return None

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
        earlier `apply` of these keys took effect, waiting for one whose transaction is still
        in flight (its locks held) and answering with what it committed or rolled back;
        `LockTimeout` when that takes longer than the lock timeout. For a table without a key,
        `keys` are rows' values (every column, NULLs compared as equal)."""

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

    def database_key(self) -> str:
        """A key for what the worker learns about this database within one process (the
        tuned batch size, worker/batchsize.py): equal for two connectors on one database
        and login. This one names the connector object alone; reads nothing."""
        return f"{type(self).__name__}:{id(self):x}"

    def batch_limit(self, key_width: int) -> int:
        """The most keys one batch may hold within the driver's bind-parameter limit."""
        return 50_000

    def __enter__(self) -> Connector:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def keyless_reached(table: str, ref: ForeignKeyRef) -> str:
    """Why a table without a key (`key: []`) is not deleted from when a foreign key whose ON
    DELETE acts (CASCADE, SET NULL, SET DEFAULT) points at it: its batches delete by the
    row's locator, so the rows the key deletes or changes could be neither counted in the
    audit nor kept from reaching a row outside the batch (a recent one, another tenant's).
    Such a key references unique columns, which can be the key."""
    key = ", ".join(ref.referred_columns)
    own = ", ".join(ref.columns)
    return (
        f"{table} has no key (`key: []`), and the foreign key {ref.qualified}({own})"
        f" → {ref.referred_table}({key}) ON DELETE {ref.on_delete} deletes or changes rows with "
        f"its rows, which a batch without a key can neither count nor check: map the key "
        f"`key: [{key}]` (the columns the foreign key references are unique)"
    )
