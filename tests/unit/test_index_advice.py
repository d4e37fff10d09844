"""The index warning (connectors/sqlverify.py `index_advice`) on tables built in memory."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from connectors.sqlverify import index_advice


def child(*indexes: tuple[str, ...], name: str = "child") -> sa.Table:
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("organisation_id", sa.Integer),
        sa.Column("left_on", sa.Date),
        sa.Column("order", sa.Date),  # a reserved word: quoted in the advice
    )
    for i, columns in enumerate(indexes):
        sa.Index(f"ix_{i}", *(table.c[c] for c in columns))
    return table


def test_without_a_tenant_column_an_index_on_the_basis_is_advised() -> None:
    """A database per customer: the advice is an index on the time basis alone."""
    advice = index_advice(child(), "left_on", None, sqlite.dialect())
    assert advice == (
        "no index leads with (left_on): selections will scan the table; create one: "
        "CREATE INDEX ix_child_left_on ON child (left_on);"
    )
    assert index_advice(child(("left_on", "id")), "left_on", None) is None


def test_the_advice_quotes_names_for_its_database() -> None:
    """A reserved word as the basis is quoted as each database quotes names."""
    table = child()
    assert "ON child (organisation_id, `order`)" in (
        index_advice(table, "order", "organisation_id", mysql.dialect()) or ""
    )
    assert 'ON child (organisation_id, "order")' in (
        index_advice(table, "order", "organisation_id", postgresql.dialect()) or ""
    )


def test_a_long_index_name_is_cut_to_what_postgresql_keeps() -> None:
    """Index names stay within 63 characters, made unique by a digest of the full name."""
    table = child(name="t" * 60)
    advice = index_advice(table, "left_on", "organisation_id", postgresql.dialect()) or ""
    name = advice.split("CREATE INDEX ")[1].split(" ON ")[0]
    assert len(name) == 63 and name.startswith("ix_ttt")


def test_the_advice_leaves_the_reflected_table_as_it_was() -> None:
    """Building the CREATE INDEX does not add an index to the table it advises on."""
    table = child()
    index_advice(table, "left_on", "organisation_id")
    assert table.indexes == set()
