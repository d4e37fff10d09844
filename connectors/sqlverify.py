"""Comparing what a mapping expects with the reflected schema of a SQL database (`verify`).

`table_of(name)` gives the reflected `sqlalchemy.Table` of an existing table; `existing` is
the set of the database's table names.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from connectors.base import Dependent, Problem, Table
from connectors.tenancy import kind_of_type, reference_problems

TableOf = Callable[[str], sa.Table]


def verify_tenancy(spec: Table, existing: set[str], table_of: TableOf) -> list[Problem]:
    """The tenant column's type, and dependents that could reach another tenant's rows."""
    column = spec.tenant_column
    if column is None:
        return []
    problems: list[Problem] = []
    tables = [spec.name]
    pending = list(spec.dependents)
    while pending:
        dep = pending.pop()
        tables.append(dep.table)
        pending.extend(dep.dependents)
    for name in dict.fromkeys(tables):
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

    return problems + reference_problems(spec, key_of)


def verify_table(spec: Table, existing: set[str], table_of: TableOf) -> list[Problem]:
    """Missing tables and columns, time bases of the wrong type (fatal), unindexed time
    bases (a warning), for a table and its dependents."""
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
    indexed = {next(iter(ix.columns)).name for ix in table.indexes if ix.columns}
    indexed.update(table.primary_key.columns.keys()[:1])
    for column in spec.dates:
        if column in table.c and column not in indexed:
            problems.append(
                Problem(
                    spec.name,
                    column,
                    "no index on this time basis: selections will scan the table",
                    fatal=False,
                )
            )
    for dep in spec.dependents:
        problems.extend(_verify_dependent(dep, spec.name, existing, table_of))
    return problems


def _verify_dependent(
    dep: Dependent, parent: str, existing: set[str], table_of: TableOf
) -> list[Problem]:
    sub = Table(
        dep.table,
        key=(),
        columns=(*dep.columns, *(c for c, _ in dep.references)),
        dependents=dep.dependents,
    )
    problems = verify_table(sub, existing, table_of)
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
