"""Comparing what a mapping expects with the reflected schema of a SQL database (`verify`).

`table_of(name)` gives the reflected `sqlalchemy.Table` of an existing table; `existing` is
the set of the database's table names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import sqlalchemy as sa

from connectors.base import Dependent, Problem, Table
from connectors.tenancy import kind_of_type
from connectors.tenantlinks import linked_tables, reference_problems, unscoped_problems

TableOf = Callable[[str], sa.Table]
MAX_INDEX_NAME = 63  # PostgreSQL's limit (MariaDB's is 64)


def verify_tenancy(spec: Table, existing: set[str], table_of: TableOf) -> list[Problem]:
    """The tenant column's type on every table a rule of `spec` filters by it, and links
    that could reach another tenant's rows (connectors.tenantlinks), at every depth."""
    column = spec.tenant_column
    if column is None:
        return []
    problems: list[Problem] = []
    for name in [spec.name, *linked_tables(spec)]:
        if name not in existing or column not in table_of(name).c:
            continue
        kind = table_of(name).c[column].type
        if kind_of_type(kind) is None:
            problems.append(
                Problem(
                    name,
                    column,
                    f"the tenant column is of type {kind!r}, which the worker cannot "
                    "compare exactly; a tenant column must hold whole numbers, text or UUIDs",
                )
            )

    def key_of(name: str) -> list[str] | None:
        if name not in existing:
            return None
        return list(table_of(name).primary_key.columns.keys()) or None

    def has_tenant(name: str) -> bool | None:
        return column in table_of(name).c if name in existing else None

    def unique_keys(name: str) -> list[list[str]]:
        return unique_column_sets(table_of(name)) if name in existing else []

    return (
        problems
        + reference_problems(spec, key_of)
        + unscoped_problems(spec, has_tenant, unique_keys)
    )


def unique_column_sets(table: sa.Table) -> list[list[str]]:
    """The columns of the primary key, each unique constraint and each unique index."""
    found = [[c.name for c in table.primary_key.columns]]
    found += [
        [c.name for c in constraint.columns]
        for constraint in table.constraints
        if isinstance(constraint, sa.UniqueConstraint)
    ]
    found += [[c.name for c in index.columns] for index in table.indexes if index.unique]
    return [columns for columns in found if columns]


def verify_table(
    spec: Table, existing: set[str], table_of: TableOf, dialect: sa.Dialect | None = None
) -> list[Problem]:
    """Missing tables and columns, time bases of the wrong type (fatal), time bases no index
    serves (a warning with the `CREATE INDEX` that would, in `dialect`'s SQL), for a table
    and its dependents."""
    if spec.name not in existing:
        return [Problem(spec.name, None, "table is missing from the database")]
    table = table_of(spec.name)
    problems: list[Problem] = []
    wanted = [*spec.key, *spec.columns, *spec.dates]
    if spec.tenant_column:
        wanted.append(spec.tenant_column)
    for column in dict.fromkeys(wanted):
        if column not in table.c:
            problems.append(Problem(spec.name, column, "column is missing from the table"))
    for column in spec.dates:
        if column in table.c and not isinstance(table.c[column].type, sa.Date | sa.DateTime):
            problems.append(
                Problem(
                    spec.name,
                    column,
                    f"a time basis must be a DATE or TIMESTAMP column, not {table.c[column].type}",
                )
            )
    for column in dict.fromkeys(spec.dates):
        if column in table.c:
            advice = index_advice(table, column, spec.tenant_column, dialect)
            if advice is not None:
                problems.append(Problem(spec.name, column, advice, fatal=False))
    for dep in spec.dependents:
        problems.extend(_verify_dependent(dep, spec.name, existing, table_of, dialect))
    return problems


def index_advice(
    table: sa.Table, basis: str, tenant: str | None, dialect: sa.Dialect | None = None
) -> str | None:
    """None when an index serves the selection of expired rows by `basis`; else a warning
    with the `CREATE INDEX` that would (in `dialect`'s SQL).

    The selection filters on the tenant column (a shared table) and compares the time basis
    with the cutoff. An index serves it when its columns start with the time basis, or with
    the tenant column and then the time basis. An index led by the tenant column alone still
    leaves every row of the tenant to read; the advice says so.
    """
    tenant = tenant if tenant is not None and tenant in table.c else None
    wanted = [tenant, basis] if tenant is not None else [basis]
    leading: list[tuple[str | None, list[str]]] = [
        (ix.name if isinstance(ix.name, str) else None, [c.name for c in ix.columns])
        for ix in table.indexes
    ]
    primary = table.primary_key.name
    leading.append(
        (primary if isinstance(primary, str) else None, list(table.primary_key.columns.keys()))
    )
    for _name, columns in leading:
        if columns[:1] == [basis] or (tenant is not None and columns[:2] == wanted):
            return None
    statement = create_index(table, wanted, dialect)
    by_tenant = [
        name or "the primary key" for name, cols in leading if tenant and cols[:1] == [tenant]
    ]
    if by_tenant:
        return (
            f"no index leads with ({', '.join(wanted)}); {by_tenant[0]} leads with the tenant "
            f"column only, so each run reads all of a customer's rows to compare {basis}; "
            f"create one: {statement}"
        )
    return (
        f"no index leads with ({', '.join(wanted)}): selections will scan the table; "
        f"create one: {statement}"
    )


def create_index(table: sa.Table, columns: list[str], dialect: sa.Dialect | None) -> str:
    """`CREATE INDEX name ON table (columns)` quoted for `dialect`, on a detached copy of the
    table (an index made on the reflected table would join its list of indexes)."""
    name = f"ix_{table.name}_{'_'.join(columns)}"
    if len(name) > MAX_INDEX_NAME:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
        name = f"{name[: MAX_INDEX_NAME - 9]}_{digest}"
    copy = sa.Table(table.name, sa.MetaData(), *(sa.Column(c, table.c[c].type) for c in columns))
    index = sa.Index(name, *(copy.c[c] for c in columns))
    return f"{sa.schema.CreateIndex(index).compile(dialect=dialect)};"


def _verify_dependent(
    dep: Dependent,
    parent: str,
    existing: set[str],
    table_of: TableOf,
    dialect: sa.Dialect | None,
) -> list[Problem]:
    sub = Table(
        dep.table,
        key=(),
        columns=(*dep.columns, *(c for c, _ in dep.references)),
        dependents=dep.dependents,
    )
    problems = verify_table(sub, existing, table_of, dialect)
    if dep.table in existing:
        parent_table = table_of(parent)
        for _, parent_col in dep.references:
            if parent_col not in parent_table.c:
                problems.append(
                    Problem(
                        parent,
                        parent_col,
                        f"referenced by {dep.table} but missing from the table",
                    )
                )
    return problems
