"""Which customers of one shared database have anything due: one statement for many.

A tick runs the customers of a shared product database one after another, and most of them
have nothing due. Each one's grouped backlog count (`connectors.sqlcount`) is one statement
with its own round trip, parsing and planning, and the fixed cost of those is most of what
an idle customer costs the product database. Here the customers of one shape (the same
targets but for their tenant and cutoffs, `connectors.sqlbind.shape`) are asked together:

    WITH rw_customers AS (                         -- a row per customer: its index and values
        SELECT CAST(:rw_i__0 AS INTEGER) AS rw_i, CAST(:rw_value_0__0 AS INTEGER) AS rw_value_0, …
        UNION ALL SELECT CAST(:rw_i__1 AS INTEGER), …
    )
    SELECT rw_i,
           EXISTS (SELECT 1 FROM person WHERE <the first target's expired test>),
           EXISTS (…)                              -- one per target, in order
    FROM rw_customers
    WHERE rw_i >= 0                                -- not the rows that fill it up

A statement has room for a fixed number of customers (one statement, one plan, however
many are asked); the rows left over are filled with index -1 and never checked. A select
nested in a target's test (a time basis read from a related table) reads the values of the
outer row's customer, never every customer's row.

Each target's test is exactly the one its count reads (`SqlReads._expired`, with the
per-customer values of `connectors.sqlbind` as the row's columns instead of parameters),
so a target is due here exactly when its own count is above 0. The answer is a flag per
target, not a count: a customer with something due counts it itself, as before.

PostgreSQL only, where each value is cast to the type its parameter has in the count: an
integer, numeric, date, timestamp or UUID column's own type, and TEXT for a character
column (a VARCHAR(n) or CHAR(n) cast would cut a longer tenant value and could match
another tenant). A statement with a value of any other type, or on another database, is
not built (None): those customers count themselves. SQLite and MariaDB compare a value by
the type it arrives with, which a UNION of rows would change, so they are not asked
together.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.types import TypeEngine

from connectors.base import ConnectorError, Target, TenantValueError
from connectors.session import reading
from connectors.sqlbind import PREFIX, Cache, Slots

if TYPE_CHECKING:
    from connectors.sqlread import SqlReads

DIALECTS = ("postgresql",)
"""The databases whose customers are asked together (see the module docstring)."""

MAX_PARAMETERS = 30_000
"""At most this many parameters per statement (PostgreSQL takes at most 65,535)."""

INDEX = "rw_i"
PADDING = -1
"""The index of a row that only fills a statement up to its size (one statement, one plan,
for every number of customers): the statement's WHERE leaves it out, so its EXISTS tests
never run."""
CUSTOMERS = "rw_customers"

_SAME_TYPE = (sa.Integer, sa.Numeric, sa.Date, sa.DateTime, sa.Uuid)
"""Types a value is cast to as they are (SQLAlchemy's generic types and their subclasses)."""


@runtime_checkable
class JointCheck(Protocol):
    """A connector that can say for several customers of one shape which targets are due."""

    def joint_key(self, targets: Sequence[Target]) -> Hashable | None:
        """What an answer for `targets` depends on besides the customer's values: their
        shape and the reflected tables read (see `connectors.sqlread.SqlReads._shape_key`).
        None when they cannot be asked together."""
        ...

    def due_together(self, customers: Sequence[Sequence[Target]]) -> list[list[bool] | None] | None:
        """For each customer (its targets, all of one shape and in the same order), whether
        each target has at least one expired row now, or None for a customer whose values
        do not convert (a tenant value that is not exactly the column's: its own count
        raises `TenantValueError`); None for all when they cannot be asked together
        (another database, a type not listed above). Raises `ConnectorError` like a
        count."""
        ...


@dataclass(frozen=True)
class Joint:
    """A built statement for `size` customers, and the slots that give each its values."""

    statement: sa.Select[Any]
    slots: Slots
    size: int


NOT_JOINT = Joint(sa.select(sa.literal(1)), Slots(), 0)
"""Kept for a shape whose customers cannot be asked together, so it is not built again."""


def _cache(table: sa.Table) -> Cache[Joint]:
    """The joint statements built on `table`'s reflection, kept in its MetaData's `info`
    like the grouped counts (`connectors.sqlread.grouped_cache`): a new reflection (drift)
    starts empty."""
    found: Cache[Joint] = table.metadata.info.setdefault(
        "retention_worker.together", Cache(JOINT_PER_SCHEMA)
    )
    return found


JOINT_PER_SCHEMA = 64
"""Joint statements kept per reflection (one per shape of a mapping's rules)."""


def chunk_size(slots: int) -> int:
    """Customers per statement: at most 100, and within MAX_PARAMETERS."""
    return max(1, min(100, MAX_PARAMETERS // (slots + 1)))


def cast_type(type_: TypeEngine[Any]) -> TypeEngine[Any] | None:
    """The type a value of `type_` is cast to in the customers' rows; None when the value
    cannot be carried exactly (see the module docstring)."""
    if isinstance(type_, sa.String):  # VARCHAR, CHAR, TEXT, …: never cut
        return sa.Text()
    if isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Float):
        return sa.Numeric()  # no precision: no rounding
    if isinstance(type_, _SAME_TYPE) and not isinstance(type_, sa.Float):
        return type_
    return None


def build(reads: SqlReads, targets: Sequence[Target]) -> Joint | None:
    """The statement for customers of `targets`' shape, or None (see `cast_type`)."""
    slots = Slots()
    tests: list[tuple[sa.Table, ColumnElement[bool]]] = []
    for i, target in enumerate(targets):
        table = reads._table(target.table.name)
        tests.append((table, reads._expired(table, target, slots.part(i, target))))
    types: dict[str, TypeEngine[Any]] = {}
    for _, test in tests:
        for node in visitors.iterate(test):
            if isinstance(node, BindParameter) and node.key.startswith(PREFIX):
                types[node.key] = node.type
    names = slots.names()
    if set(names) != set(types):
        return None  # a value not where it was expected: do not guess
    casts = {name: cast_type(types[name]) for name in names}
    if any(c is None for c in casts.values()):
        return None
    size = chunk_size(len(names))
    rows = [
        sa.select(
            sa.cast(sa.bindparam(f"{INDEX}__{j}", type_=sa.Integer()), sa.Integer()).label(INDEX),
            *(
                sa.cast(sa.bindparam(f"{name}__{j}", type_=types[name]), casts[name]).label(name)  # type: ignore[arg-type]
                for name in names
            ),
        )
        for j in range(size)
    ]
    customers = sa.union_all(*rows).cte(CUSTOMERS)

    nested: set[int] = set()

    def to_column(element: Any, **_kw: Any) -> Any:
        if isinstance(element, BindParameter) and element.key in casts:
            return customers.c[element.key]
        if isinstance(element, sa.Select) and id(element) not in nested:
            # A select inside the test (a related basis, "no related row"): its values are
            # those of the outer row's customer. Auto-correlation reaches the enclosing
            # select only, so it would read every customer's row as a table of its own and
            # match another customer's tenant: this one correlates each table an enclosing
            # select has, at any depth (SQLAlchemy's `correlate_except(None)`).
            nested.add(id(element))
            inner = cast(sa.Select[Any], visitors.replacement_traverse(element, {}, to_column))
            return inner.correlate_except(None)
        return None

    flags = [
        sa.exists(
            sa.select(sa.literal(1))
            .select_from(table)
            .where(visitors.replacement_traverse(test, {}, to_column))
        )
        for table, test in tests
    ]
    statement = (
        sa.select(customers.c[INDEX], *flags)
        .select_from(customers)
        .where(customers.c[INDEX] >= 0)  # a padding row (index -1) is not checked
    )
    return Joint(statement, slots, size)


def due_together(
    reads: SqlReads, customers: Sequence[Sequence[Target]]
) -> list[list[bool] | None] | None:
    """`JointCheck.due_together` for the SQL connector (see the module docstring)."""
    if reads.dialect not in DIALECTS or len(customers) < 2:
        return None
    key = reads._shape_key(customers[0])
    if key is None or any(reads._shape_key(c) != key for c in customers[1:]):
        return None
    cache = _cache(reads._table(customers[0][0].table.name))
    joint = cache.get(key)
    if joint is None:
        for targets in customers:  # built with the values of one whose values convert
            try:
                built = build(reads, targets)
            except TenantValueError:
                continue  # this customer's tenant value does not convert: another's
            break
        else:
            return [None] * len(customers)
        joint = built or NOT_JOINT
        cache.put(key, joint)
    if joint is NOT_JOINT:
        return None
    given: list[dict[str, Any] | None] = []
    for targets in customers:
        try:
            given.append(joint.slots.params(targets))
        except (ConnectorError, ValueError, OverflowError, TypeError):
            given.append(None)  # its values do not convert (its own count says why): not asked
    refused = {i for i, v in enumerate(given) if v is None}
    filler = next((v for v in given if v is not None), None)
    if filler is None:
        return [None] * len(customers)
    values = [v if v is not None else filler for v in given]  # a refused one's row: another's
    found: dict[int, list[bool]] = {}
    tables = ", ".join(sorted({t.table.name for t in customers[0]}))
    for start in range(0, len(values), joint.size):
        chunk = values[start : start + joint.size]
        params: dict[str, Any] = {}
        for j in range(joint.size):
            index = start + min(j, len(chunk) - 1)  # padded with the last customer's values
            params[f"{INDEX}__{j}"] = index if j < len(chunk) else PADDING
            for name, value in values[index].items():
                params[f"{name}__{j}"] = value
        with (
            reads._wrap(f"cannot check {tables} for expired rows"),
            reading(reads.engine) as conn,
        ):
            for row in conn.execute(joint.statement, params):
                found[int(row[0])] = [bool(flag) for flag in row[1:]]
    return [None if i in refused else found[i] for i in range(len(customers))]
