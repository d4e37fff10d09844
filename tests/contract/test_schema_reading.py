"""`Connector.foreign_keys_to` and `Connector.table_schema` on SQLite, PostgreSQL and MariaDB,
and the in-memory connector (issue 9, points 5 and 6).

The schema is made with plain DDL, one foreign key per ON DELETE action. Each test checks
what the connector reads against what the database then does: a key read as refusing
(`RefAction.blocks`) refuses a delete through the connector's own session, one read as
CASCADE deletes the referencing row, on every backend (SQLite included: the connector turns
foreign keys on in every session).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from connectors.base import ColumnKind, ConnectorError, ForeignKeyRef, RefAction, UniqueKey
from connectors.memory import MemoryConnector
from connectors.sql import SqlConnector

PEPPER = b"schema-pepper-0123456789"

# (table, ON DELETE clause or "" for the default)
ACTIONS = [
    ("c_default", ""),
    ("c_restrict", "ON DELETE RESTRICT"),
    ("c_no_action", "ON DELETE NO ACTION"),
    ("c_cascade", "ON DELETE CASCADE"),
    ("c_set_null", "ON DELETE SET NULL"),
]


def ddl(dialect: str) -> list[str]:
    statements = [
        "CREATE TABLE p (id INTEGER PRIMARY KEY, t INTEGER NOT NULL, "
        "parent_id INTEGER REFERENCES p(id), UNIQUE (t, id))",
    ]
    for name, action in ACTIONS:
        statements.append(
            f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, p_id INTEGER, "
            f"FOREIGN KEY (p_id) REFERENCES p(id) {action})"
        )
    statements += [
        "CREATE TABLE c_pair (id INTEGER PRIMARY KEY, pt INTEGER, pid INTEGER, "
        "FOREIGN KEY (pt, pid) REFERENCES p(t, id) ON DELETE CASCADE ON UPDATE CASCADE)",
        # Written on the column: SQLAlchemy's SQLite reflection misses these actions.
        "CREATE TABLE c_inline (id INTEGER PRIMARY KEY, "
        "p_id INTEGER REFERENCES p(id) ON DELETE RESTRICT)",
        "CREATE TABLE c_inline_cascade (id INTEGER PRIMARY KEY, "
        "p_id INTEGER REFERENCES p(id) ON DELETE CASCADE ON UPDATE SET NULL)",
        "CREATE TABLE other (id INTEGER PRIMARY KEY)",
        "CREATE TABLE c_other (id INTEGER PRIMARY KEY, o_id INTEGER REFERENCES other(id))",
        "CREATE TABLE u (id INTEGER PRIMARY KEY, username VARCHAR(20) NOT NULL UNIQUE, "
        "code CHAR(8), t INTEGER, born DATE, seen TIMESTAMP NULL, note TEXT, amount NUMERIC(8, 2), "
        "CONSTRAINT uq_t_code UNIQUE (t, code))",
        "CREATE UNIQUE INDEX ux_t_born ON u (t, born)",
        "CREATE INDEX ix_note_plain ON u (t)",
    ]
    if dialect == "postgresql":
        statements += [
            "CREATE UNIQUE INDEX ux_lower_note ON u (lower(note))",
            "CREATE UNIQUE INDEX ux_seen_nnd ON u (seen) NULLS NOT DISTINCT",
        ]
    return statements


@pytest.fixture
def connector(any_db_url: str) -> Iterator[SqlConnector]:
    engine = sa.create_engine(any_db_url)
    try:
        with engine.begin() as conn:
            for statement in ddl(engine.dialect.name):
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()
    sql = SqlConnector(any_db_url, pepper=PEPPER)
    sql.open()
    yield sql
    sql.close()


def test_foreign_keys_to_lists_every_other_tables_key_with_its_action(
    connector: SqlConnector,
) -> None:
    """Every foreign key into p from another table, in table order, with its columns and ON
    DELETE action; p's reference to itself and keys into other tables are left out. A
    default or NO ACTION reads as NO ACTION, except on MariaDB, which reports neither and
    treats both as RESTRICT."""
    mariadb = connector.dialect in ("mysql", "mariadb")
    no_action = RefAction.RESTRICT if mariadb else RefAction.NO_ACTION
    found = connector.foreign_keys_to("p")
    assert [
        (r.table, r.columns, r.referred_table, r.referred_columns, r.on_delete) for r in found
    ] == [
        ("c_cascade", ("p_id",), "p", ("id",), RefAction.CASCADE),
        ("c_default", ("p_id",), "p", ("id",), no_action),
        ("c_inline", ("p_id",), "p", ("id",), RefAction.RESTRICT),
        ("c_inline_cascade", ("p_id",), "p", ("id",), RefAction.CASCADE),
        ("c_no_action", ("p_id",), "p", ("id",), no_action),
        ("c_pair", ("pt", "pid"), "p", ("t", "id"), RefAction.CASCADE),
        ("c_restrict", ("p_id",), "p", ("id",), RefAction.RESTRICT),
        ("c_set_null", ("p_id",), "p", ("id",), RefAction.SET_NULL),
    ]
    pair = next(r for r in found if r.table == "c_pair")
    assert pair.on_update is RefAction.CASCADE
    inline = next(r for r in found if r.table == "c_inline_cascade")
    assert inline.on_update is RefAction.SET_NULL
    assert pair.pairs == (("pt", "t"), ("pid", "id"))
    assert [r.table for r in connector.foreign_keys_to("other")] == ["c_other"]
    assert connector.foreign_keys_to("c_other") == []


def test_what_is_read_as_refusing_refuses_a_delete_and_cascade_cascades(
    connector: SqlConnector,
) -> None:
    """For each key into p: a referenced p row is deleted through the connector's session;
    a key read as refusing makes that fail (nothing changes), CASCADE deletes the child and
    SET NULL clears its reference."""
    for ref in connector.foreign_keys_to("p"):
        if ref.table == "c_pair":
            continue
        with connector.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO p (id, t) VALUES (1, 1)"))
            conn.execute(sa.text(f"INSERT INTO {ref.table} (id, p_id) VALUES (1, 1)"))
        delete = sa.text("DELETE FROM p WHERE id = 1")
        if ref.on_delete.blocks:
            with pytest.raises(sa.exc.IntegrityError), connector.engine.begin() as conn:
                conn.execute(delete)
            with connector.engine.begin() as conn:
                conn.execute(sa.text(f"DELETE FROM {ref.table}"))
                conn.execute(delete)
            continue
        with connector.engine.begin() as conn:
            conn.execute(delete)
        with connector.engine.connect() as conn:
            left = conn.execute(sa.text(f"SELECT p_id FROM {ref.table}")).scalars().all()
        assert left == ([] if ref.on_delete is RefAction.CASCADE else [None]), ref
        with connector.engine.begin() as conn:
            conn.execute(sa.text(f"DELETE FROM {ref.table}"))


def test_table_schema_reads_types_lengths_nullability_and_unique_keys(
    connector: SqlConnector,
) -> None:
    """Column kinds, lengths, NOT NULL and CHAR padding; the primary key, an inline UNIQUE
    (SQLite keeps it as an automatic index), a UNIQUE constraint and a unique index, each
    once; a plain index is not a unique key; the table's own foreign keys."""
    schema = connector.table_schema("u")
    columns = schema.columns
    assert (columns["username"].kind, columns["username"].length) == (ColumnKind.TEXT, 20)
    assert not columns["username"].nullable
    assert columns["username"].type_name.startswith("VARCHAR")
    assert (columns["code"].length, columns["code"].padded) == (8, True)
    assert columns["born"].kind is ColumnKind.DATE
    assert columns["seen"].kind is ColumnKind.DATETIME
    assert columns["t"].kind is ColumnKind.INTEGER
    assert columns["amount"].kind is ColumnKind.NUMBER
    assert columns["note"].kind is ColumnKind.TEXT
    assert not columns["id"].nullable and columns["t"].nullable
    keys = {key.columns: key for key in schema.unique}
    assert keys[("id",)].primary
    assert {("username",), ("t", "code"), ("t", "born")} <= set(keys)
    assert ("t",) not in keys
    assert not (keys[("username",)].name or "").startswith("sqlite_autoindex")  # not written
    assert keys[("t", "code")].name == "uq_t_code"
    assert keys[("t", "born")].name == "ux_t_born"
    if connector.dialect == "postgresql":
        assert ("note",) in keys  # lower(note): an expression names its column
        assert keys[("seen",)] == UniqueKey("ux_seen_nnd", ("seen",), nulls_distinct=False)
    else:
        assert len(keys) == 4
    assert connector.table_schema("c_pair").references == (
        ForeignKeyRef(
            next(r.name for r in connector.foreign_keys_to("p") if r.table == "c_pair"),
            "c_pair",
            ("pt", "pid"),
            "p",
            ("t", "id"),
            RefAction.CASCADE,
            RefAction.CASCADE,
        ),
    )


def test_table_schema_of_a_missing_table_is_a_schema_error(connector: SqlConnector) -> None:
    """A table the database lacks raises SchemaError (a ConnectorError) naming it."""
    with pytest.raises(ConnectorError, match="table nope does not exist"):
        connector.table_schema("nope")


def test_the_memory_connector_has_no_foreign_keys_and_no_declared_schema() -> None:
    """In memory: no foreign keys, no declared types (None), and a missing table refused."""
    memory = MemoryConnector({"child": [{"id": 1}]})
    memory.open()
    assert memory.foreign_keys_to("child") == []
    assert memory.table_schema("child") is None
    with pytest.raises(ConnectorError, match="table nope does not exist"):
        memory.table_schema("nope")
