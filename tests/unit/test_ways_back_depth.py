"""A chain of acting ON DELETE keys longer than the walk follows (connectors/sqlrefuse.py,
`ways_back`, MAX_DEPTH tables) is refused, not taken for safe: before, the walk stopped at
the limit, so a cycle back to the subject past it went unchecked (on PostgreSQL a recent
child's key was set to NULL with the run `succeeded`). A chain that ends within the limit
is followed and finds its way back."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa

from connectors.base import ForeignKeyRef, RefAction, SchemaError
from connectors.sqlreach import MAX_DEPTH
from connectors.sqlrefuse import ways_back


def chain(hops: int) -> tuple[dict[str, sa.Table], dict[str, list[ForeignKeyRef]]]:
    """child ← t1(up) ← t2(up) ← … ← t<hops>(up), each ON DELETE CASCADE, and
    child(back) → t<hops>(id) ON DELETE SET NULL: a cycle back to child."""
    md = sa.MetaData()
    names = ["child", *(f"t{i}" for i in range(1, hops + 1))]
    tables = {
        n: sa.Table(
            n,
            md,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("up", sa.Integer),
            sa.Column("back", sa.Integer),
        )
        for n in names
    }
    refs: dict[str, list[ForeignKeyRef]] = {n: [] for n in names}
    for parent, child in itertools.pairwise(names):
        refs[parent].append(
            ForeignKeyRef(None, child, ("up",), parent, ("id",), on_delete=RefAction.CASCADE)
        )
    last = names[-1]
    refs[last].append(
        ForeignKeyRef(None, "child", ("back",), last, ("id",), on_delete=RefAction.SET_NULL)
    )
    return tables, refs


def walk(hops: int) -> int:
    tables, refs = chain(hops)
    child = tables["child"]
    found = ways_back(
        tables.__getitem__, lambda n: refs[n], child, child.alias("reached"), child.c.id == 1
    )
    return len(found)


def test_a_cycle_within_the_limit_is_found() -> None:
    assert walk(MAX_DEPTH - 1) == 1


def test_a_chain_past_the_limit_is_refused() -> None:
    with pytest.raises(SchemaError, match=f"through {MAX_DEPTH} tables"):
        walk(MAX_DEPTH + 2)
