"""Composite keys with non-ASCII text are found by key, whatever the key column's character
set (connectors/sqlchange.py, `key_in`): a lookup of the rows still there (what settlement
and a lost COMMIT rely on) returns exactly the keys present, and a batch deletes exactly
its keys. On MariaDB 10.11 a row IN list of two or more keys compared nothing in a latin1,
ucs2 or utf16 column ('café' was not found beside 'zoë'): the batch locked nothing and a
settlement would have counted rows still there as gone.

On SQLite, PostgreSQL and MariaDB (MariaDB: the key column in several character sets).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import Change, Table, Target
from connectors.sql import SqlConnector
from tests.support import PEPPER

# Non-ASCII texts that latin1 holds (and two that differ only by an umlaut: in
# latin1_german2_ci ö is oe, so they stay two keys).
CODES = ("café", "zoë", "straße", "nöte", "note", "plain", "ÿes", "Ærø")
ROWS = [(tenant, code, i) for tenant in (1, 2) for i, code in enumerate(CODES)]
OLD = dt.date(2020, 1, 1)
MARIADB = ["latin1_german2_ci", "latin1_bin", "utf16_general_ci", "utf8mb4_general_ci"]

SETTINGS = settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SUBSETS = st.lists(st.sampled_from([r[1:] for r in ROWS]), unique=True, max_size=len(CODES))


def create(url: str, collation: str | None = None) -> None:
    """member(tenant, code, id, left_on), primary key (tenant, code, id); every code in
    both tenants, all expired."""
    md = sa.MetaData()
    sa.Table(
        "member",
        md,
        sa.Column("tenant", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("code", sa.String(20, collation=collation), primary_key=True),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("left_on", sa.Date, nullable=False),
    )
    engine = sa.create_engine(url)
    try:
        md.create_all(engine)
        with engine.begin() as conn:
            rows = [{"tenant": t, "code": c, "id": i, "left_on": OLD} for t, c, i in ROWS]
            conn.execute(md.tables["member"].insert(), rows)
    finally:
        engine.dispose()


def target() -> Target:
    """Tenant 1's members expired before 2025 (the key's tenant part is the tenant column)."""
    table = Table("member", key=("tenant", "code", "id"), tenant_column="tenant")
    return Target(table, 1, "left_on", dt.date(2025, 1, 1), dt.datetime(2025, 1, 1, tzinfo=dt.UTC))


def keys_left(url: str) -> set[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT tenant, code, id FROM member")
            return {(t, str(c), i) for t, c, i in conn.execute(query)}
    finally:
        engine.dispose()


def check_lookup_and_delete(url: str) -> None:
    """Every subset of tenant 1's keys (with tenant 2's same keys and absent ones asked
    too) is found exactly; then a batch of some keys deletes exactly those."""
    connector = SqlConnector(url, pepper=PEPPER)
    connector.open()
    try:

        @SETTINGS
        @given(subset=SUBSETS, absent=st.booleans())
        def lookup(subset: list[tuple[str, int]], absent: bool) -> None:
            asked = [(1, code, i) for code, i in subset]
            if absent:  # a key that no row has: a known code under another id
                asked.append((1, "café", 999))
            found = connector.remaining(target(), Change.DELETE, asked)
            assert found == {(1, code, i) for code, i in subset}

        lookup()
        batch = [(1, code, i) for i, code in enumerate(CODES) if i % 2 == 0]
        applied = connector.apply(target(), Change.DELETE, batch)
    finally:
        connector.close()
    assert sorted(applied.changed_keys) == sorted(batch)
    assert keys_left(url) == set(ROWS) - set(batch)


def test_composite_text_keys_are_found_and_deleted_exactly(any_db_url: str) -> None:
    create(any_db_url)
    check_lookup_and_delete(any_db_url)


@pytest.mark.parametrize("collation", MARIADB)
def test_a_mariadb_key_column_in_any_character_set(mariadb_url: str, collation: str) -> None:
    create(mariadb_url, collation)
    check_lookup_and_delete(mariadb_url)


def test_a_mariadb_enum_key_column_in_latin1(mariadb_url: str) -> None:
    """An ENUM key part compares as text in its column's character set: without the cast
    `remaining` found only the ASCII codes, so a batch deleted only those and a settlement
    counted rows still there as gone."""
    values = ", ".join(f"'{c}'" for c in CODES)
    engine = sa.create_engine(mariadb_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"CREATE TABLE member (tenant INT, code ENUM({values}) CHARACTER SET latin1,"
                    " id INT, left_on DATE NOT NULL, PRIMARY KEY (tenant, code, id))"
                )
            )
            conn.execute(
                sa.text("INSERT INTO member VALUES (:t, :c, :i, :d)"),
                [{"t": t, "c": c, "i": i, "d": OLD} for t, c, i in ROWS],
            )
    finally:
        engine.dispose()
    check_lookup_and_delete(mariadb_url)
