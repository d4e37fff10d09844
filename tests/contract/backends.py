"""The contract suite's schema, rows and backends (see test_connector_contract.py).

Each backend is a connector over the same seeded rows, plus what the tests need to look
behind it: the SQL connector on a fresh SQLite, PostgreSQL or MariaDB database, and the
MemoryConnector. The schema and rows are built here, so the suite does not depend on the
demo schemas.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.base import (
    ColumnMask,
    Connector,
    ConnectorError,
    Dependent,
    Key,
    Mask,
    Table,
    Target,
)
from connectors.memory import MemoryConnector
from connectors.sql import SqlConnector

PEPPER = b"contract-pepper-0123456789"
OTHER_PEPPER = b"another-pepper-9876543210"
D, T = dt.date, dt.datetime
CUTOFF_DATE = D(2024, 1, 1)
# Midnight in UTC+1 is 23:00 UTC the day before: naive timestamps compare against that.
CUTOFF_INSTANT = T(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
LOOKALIKE = "anon-hanna.bos@example.nl"  # an e-mail shaped like a pseudonym, but not hex
LATE_2230, LATE_2330 = T(2023, 12, 31, 22, 30), T(2023, 12, 31, 23, 30)  # around 23:00 UTC

# --- schema and rows -------------------------------------------------------------------

METADATA = sa.MetaData()
sa.Table(
    "person",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tenant", sa.Integer, nullable=False, index=True),
    sa.Column("name", sa.String(100)),
    sa.Column("email", sa.String(200)),
    sa.Column("postcode", sa.String(10)),
    sa.Column("birth_date", sa.Date),  # deliberately not indexed
    sa.Column("left_on", sa.Date, index=True),
    sa.Column("last_seen_at", sa.DateTime(timezone=False), index=True),
)
sa.Table(
    "photo",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("person.id"), nullable=False),
    sa.Column("path", sa.String(100)),
)
sa.Table(
    "photo_tag",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("photo_id", sa.Integer, sa.ForeignKey("photo.id"), nullable=False),
    sa.Column("tag", sa.String(50)),
)
sa.Table(
    "membership",
    METADATA,
    sa.Column("person_id", sa.Integer, sa.ForeignKey("person.id"), primary_key=True),
    sa.Column("group_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ended_on", sa.Date, index=True),
)


# A shared key: children are numbered per tenant, so (1, 7) and (2, 7) are two children.
sa.Table(
    "org_child",
    METADATA,
    sa.Column("org", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("left_on", sa.Date, index=True),
)
sa.Table(
    "org_photo",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("org", sa.Integer, nullable=False),
    sa.Column("child_id", sa.Integer, nullable=False),
)
# Text tenants; on MariaDB in the test database's utf8mb4_unicode_ci (case and accents ignored).
sa.Table(
    "text_child",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("org", sa.String(20), nullable=False, index=True),
    sa.Column("left_on", sa.Date, index=True),
)
sa.Table(
    "odd",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tenant", sa.Integer, nullable=False),
    sa.Column("left_on", sa.Date, index=True),
)


def _rows(columns: str, *values: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [dict(zip(columns.split(), v, strict=True)) for v in values]


# Tenant 1, basis left_on < 2024-01-01: 1, 3, 4, 8, 10 (6 is on the cutoff, 7 has no date).
# Tenant 1, basis last_seen_at < 2023-12-31 23:00 UTC: 1, 3, 8, 10 (4 is at 23:30).
SEED: dict[str, list[dict[str, Any]]] = {
    "person": _rows(
        "id tenant name email postcode birth_date left_on last_seen_at",
        (1, 1, "Eva Smit", "eva@x.org", "1234 AB", D(1990, 5, 17), D(2019, 1, 1), T(2019, 5, 5, 8)),
        (2, 2, "Eva Smit", "eva@y.net", "9876 ZX", D(1988, 8, 8), D(2018, 1, 1), T(2018, 1, 1, 9)),
        (3, 1, "Carla Jansen", "c@x.org", "3456 CD", D(2001, 11, 30), D(2021, 6, 15), LATE_2230),
        (4, 1, "Daan Visser", "d@x.org", "4567 EF", D(1975, 1, 1), D(2023, 12, 31), LATE_2330),
        (5, 2, "Bram Bakker", "b@y.net", "5678 GH", D(1999, 9, 9), D(2020, 1, 1), T(2020, 1, 1)),
        (6, 1, "Fleur de Wit", "f@x.org", "6789 IJ", D(1995, 3, 3), D(2024, 1, 1), T(2024, 6, 1)),
        (7, 1, "Gijs Mulder", "g@x.org", "7890 KL", D(1980, 7, 7), None, None),
        (8, 1, "Hanna Bos", LOOKALIKE, "8901MN", D(2010, 10, 10), D(2022, 2, 2), T(2022, 2, 2)),
        (9, 2, "Ids Kok", "i@y.net", "9012 OP", D(2003, 3, 3), D(2025, 1, 1), T(2025, 1, 1)),
        (10, 1, "Eva Smit", "eva.s@x.org", None, None, D(2020, 3, 1), T(2020, 3, 1, 10)),
    ),
    "photo": _rows(
        "id person_id path",
        *((1, 1, "a.jpg"), (2, 1, "b.jpg"), (3, 3, "c.jpg"), (4, 2, "d.jpg"), (5, 6, "e.jpg")),
    ),
    "photo_tag": _rows(
        "id photo_id tag",
        *((1, 1, "beach"), (2, 1, "sun"), (3, 2, "park"), (4, 3, "zoo"), (5, 4, "home")),
        (6, 5, "party"),
    ),
    # Expired (ended_on < 2024-01-01): (1,1) (1,2) (2,1) (3,1) (4,1) (4,3).
    "membership": _rows(
        "person_id group_id ended_on",
        *((1, 1, D(2020, 1, 1)), (1, 2, D(2023, 5, 5)), (1, 3, None), (2, 1, D(2020, 1, 1))),
        *((3, 1, D(2021, 1, 1)), (3, 2, D(2024, 2, 2)), (4, 1, D(2019, 9, 9))),
        *((4, 3, D(2022, 1, 1)), (6, 2, D(2024, 1, 1))),
    ),
}
SEED |= {
    "org_child": _rows(
        "org id left_on", (1, 7, D(2020, 1, 1)), (2, 7, None), (1, 8, D(2020, 1, 1))
    ),
    "org_photo": _rows("id org child_id", (1, 1, 7), (2, 2, 7), (3, 1, 8), (4, 2, 8)),
    "text_child": _rows(
        "id org left_on",
        *((1, "kdv-a", D(2020, 1, 1)), (2, "KDV-A", D(2020, 1, 1)), (3, "kdv-á", D(2020, 1, 1))),
        *((4, "kdv-a ", D(2020, 1, 1)), (5, "1042", D(2020, 1, 1)), (6, "01042", D(2020, 1, 1))),
        (7, "1042b", D(2020, 1, 1)),
    ),
    # Dates before 1900 are placeholders: never expired, never the oldest.
    "odd": _rows(
        "id tenant left_on",
        *((1, 1, D(1800, 1, 1)), (2, 1, D(1899, 12, 31)), (3, 1, D(1900, 1, 1))),
        *((4, 1, D(2020, 1, 1)), (5, 1, None), (6, 1, D(2025, 1, 1))),
    ),
}
EXPIRED_PEOPLE = [(1,), (3,), (4,), (8,), (10,)]
EXPIRED_LINKS = [(1, 1), (1, 2), (2, 1), (3, 1), (4, 1), (4, 3)]

PHOTO = Dependent(
    "photo",
    references=(("person_id", "id"),),
    dependents=(Dependent("photo_tag", references=(("photo_id", "id"),)),),
)
PERSON = Table(
    "person",
    key=("id",),
    columns=("name", "email", "postcode", "birth_date"),
    dates=("left_on", "last_seen_at"),
    tenant_column="tenant",
    dependents=(PHOTO, Dependent("membership", references=(("person_id", "id"),))),
)
MEMBERSHIP = Table("membership", key=("person_id", "group_id"), dates=("ended_on",))
# References that leave out the tenant column of the key (a mapping validate refuses).
ORG_CHILD = Table(
    "org_child",
    key=("org", "id"),
    dates=("left_on",),
    tenant_column="org",
    dependents=(Dependent("org_photo", references=(("child_id", "id"),)),),
)
TEXT_CHILD = Table("text_child", key=("id",), dates=("left_on",), tenant_column="org")
ODD = Table("odd", key=("id",), dates=("left_on",), tenant_column="tenant")
FULL_MASKS = (
    ColumnMask("name", Mask.KEYED_HASH),
    ColumnMask("email", Mask.NULL),
    ColumnMask("postcode", Mask.POSTCODE_DIGITS),
    ColumnMask("birth_date", Mask.YEAR),
)


def target(table: Table = PERSON, *, tenant: Any = 1, basis: Any = "left_on", **kw: Any) -> Target:
    """A target before the fixed cutoffs; keyword arguments as in `Target`."""
    return Target(table, tenant, basis, CUTOFF_DATE, CUTOFF_INSTANT, **kw)


def link_target(**kw: Any) -> Target:
    return target(MEMBERSHIP, tenant=None, basis="ended_on", **kw)


def pages(connector: Connector, where: Target, limit: int) -> list[list[Key]]:
    """Every page of select_expired, each continuing after the last key of the previous."""
    found: list[list[Key]] = []
    after: Key | None = None
    for _ in range(100):
        page = connector.select_expired(where, after, limit)
        if not page:
            return found
        found.append(page)
        after = page[-1]
    raise AssertionError("select_expired never ran out of keys")


# --- backends --------------------------------------------------------------------------


class Backend(abc.ABC):
    """A connector over the seeded rows, plus what the tests need to look behind it."""

    connector: Connector

    @abc.abstractmethod
    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of `table` as a dict, in primary-key order, read around the connector."""

    @abc.abstractmethod
    def connector_with(self, pepper: bytes) -> Connector:
        """A second, open connector over the same data with another pepper."""

    @abc.abstractmethod
    def break_delete(self, monkeypatch: pytest.MonkeyPatch) -> Table:
        """A person mapping whose next DELETE fails after the children are gone."""

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return {name: self.rows(name) for name in SEED}

    def close(self) -> None:
        self.connector.close()


class SqlBackend(Backend):
    def __init__(self, url: str) -> None:
        self.url = url
        self._reader = sa.create_engine(url)
        METADATA.create_all(self._reader)
        with self._reader.begin() as conn:
            for spec in METADATA.sorted_tables:
                conn.execute(sa.insert(spec), SEED[spec.name])
        self.connector = self._sql = SqlConnector(url, pepper=PEPPER)
        self._others: list[Connector] = []
        self.connector.open()

    def rows(self, table: str) -> list[dict[str, Any]]:
        spec = METADATA.tables[table]
        with self._reader.connect() as conn:
            query = sa.select(spec).order_by(*spec.primary_key.columns)
            return [dict(row) for row in conn.execute(query).mappings()]

    @property
    def dialect(self) -> str:
        return self._reader.dialect.name

    def connector_with(self, pepper: bytes) -> Connector:
        other = SqlConnector(self.url, pepper=pepper)
        other.open()
        self._others.append(other)
        return other

    def break_delete(self, monkeypatch: pytest.MonkeyPatch) -> Table:
        # The mapping forgets membership, which references person: the final DELETE of
        # person violates that foreign key after photo_tag and photo rows were deleted (on
        # SQLite too: the connector turns foreign keys on in every session).
        return Table("person", key=("id",), tenant_column="tenant", dependents=(PHOTO,))

    def close(self) -> None:
        for other in self._others:
            other.close()
        super().close()
        self._reader.dispose()


class MemoryBackend(Backend):
    def __init__(self) -> None:
        self.connector = self._memory = MemoryConnector(SEED, pepper=PEPPER)
        self.connector.open()

    def rows(self, table: str) -> list[dict[str, Any]]:
        key = [c.name for c in METADATA.tables[table].primary_key.columns]
        found = [dict(r) for r in self._memory.tables[table]]
        return sorted(found, key=lambda r: tuple(r[k] for k in key))

    def connector_with(self, pepper: bytes) -> Connector:
        other = MemoryConnector({}, pepper=pepper)
        other.tables = self._memory.tables  # the same "database"
        other.open()
        return other

    def break_delete(self, monkeypatch: pytest.MonkeyPatch) -> Table:
        original = self._memory._delete_dependent

        def failing(dep: Dependent, parents: Any, where: Target, counts: dict[str, int]) -> None:
            if dep.table == "membership":  # photo and photo_tag rows are gone by now
                raise ConnectorError("simulated constraint violation")
            original(dep, parents, where, counts)

        monkeypatch.setattr(self._memory, "_delete_dependent", failing)
        return PERSON


SLOW = {
    "sqlite": "SELECT p.* FROM person p, (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL "
    "SELECT x + 1 FROM n) SELECT x FROM n)",
    "postgresql": "SELECT p.* FROM person p, LATERAL (SELECT pg_sleep(30)) s",
    "mysql": "SELECT * FROM person WHERE SLEEP(30) = 0",
}


@contextlib.contextmanager
def locked(url: str) -> Iterator[None]:
    """Another session holds a lock on person that blocks reading it, until the block ends."""
    if sa.make_url(url).get_backend_name() == "sqlite":
        holder = sqlite3.connect(sa.make_url(url).database or "", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            postgres = engine.dialect.name == "postgresql"
            if postgres:
                conn.execute(sa.text("LOCK TABLE person IN ACCESS EXCLUSIVE MODE"))
            else:
                conn.execute(sa.text("LOCK TABLES person WRITE"))
            try:
                yield
            finally:
                if not postgres:
                    conn.execute(sa.text("UNLOCK TABLES"))
                conn.rollback()
    finally:
        engine.dispose()
