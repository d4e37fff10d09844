"""The connector contract (connectors/base.py), proved once against every backend.

`ContractTests` holds the tests; each backend class below provides a `backend` fixture:
the SQL connector on SQLite, PostgreSQL and MariaDB (via `any_db_url`) and the
MemoryConnector seeded with the same rows. The schema and rows are built here, so the
suite does not depend on the demo schemas.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import re
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.anonymise import is_pseudonym, keyed_hash
from connectors.base import (
    Backlog,
    Change,
    ColumnMask,
    Connector,
    ConnectorError,
    DateQuality,
    Dependent,
    Key,
    LockTimeout,
    Mask,
    StatementTimeout,
    Table,
    Target,
    TenantValueError,
    Timeouts,
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


def _foreign_keys_on(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


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
        # person violates that foreign key after photo_tag and photo rows were deleted.
        if self._sql.engine.dialect.name == "sqlite":  # SQLite enforces FKs only on request
            sa.event.listen(self._sql.engine, "connect", _foreign_keys_on)
            self._sql.engine.dispose()  # pooled connections were made before the listener
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


# --- the contract ----------------------------------------------------------------------


class ContractTests:
    """Tests every connector passes; subclasses supply the `backend` fixture."""

    # verify

    def test_verify_finds_no_problem_in_a_matching_schema(self, backend: Backend) -> None:
        """A mapping that matches the schema (with dependents) gives no problems."""
        assert backend.connector.verify([PERSON, MEMBERSHIP]) == []

    def test_verify_reports_a_missing_table_as_fatal(self, backend: Backend) -> None:
        """A table the database lacks is a fatal problem naming that table."""
        problems = backend.connector.verify([PERSON, Table("invoice", key=("id",))])
        assert [(p.table, p.column, p.fatal) for p in problems] == [("invoice", None, True)]

    def test_verify_reports_a_missing_dependent_table_as_fatal(self, backend: Backend) -> None:
        """A dependent table the database lacks is a fatal problem too."""
        spec = Table("photo", key=("id",), dependents=(Dependent("album", (("photo_id", "id"),)),))
        problems = backend.connector.verify([spec])
        assert [(p.table, p.fatal) for p in problems] == [("album", True)]

    def test_verify_reports_a_missing_column_as_fatal(self, backend: Backend) -> None:
        """A column the table lacks is a fatal problem naming table and column."""
        problems = backend.connector.verify([Table("person", key=("id",), columns=("shoe",))])
        assert [(p.table, p.column, p.fatal) for p in problems] == [("person", "shoe", True)]

    def test_verify_reports_a_non_date_time_basis_as_fatal(self, backend: Backend) -> None:
        """A time basis that is not a DATE or TIMESTAMP column is a fatal problem."""
        problems = backend.connector.verify([Table("person", key=("id",), dates=("name",))])
        assert any(p.column == "name" and p.fatal for p in problems)

    # backlog

    def test_backlog_counts_the_tenants_rows_before_a_date_cutoff(self, backend: Backend) -> None:
        """Only the tenant's rows with a DATE basis before cutoff_date count; oldest is min."""
        backlog = backend.connector.backlog(target())
        assert (backlog.count, backlog.oldest) == (5, D(2019, 1, 1))
        other = backend.connector.backlog(target(tenant=2))
        assert (other.count, other.oldest) == (2, D(2018, 1, 1))

    def test_backlog_compares_naive_timestamps_as_utc(self, backend: Backend) -> None:
        """A naive TIMESTAMP basis is compared with cutoff_instant converted to UTC."""
        backlog = backend.connector.backlog(target(basis="last_seen_at"))
        assert (backlog.count, backlog.oldest) == (4, T(2019, 5, 5, 8))
        keys = backend.connector.select_expired(target(basis="last_seen_at"), None, 10)
        assert keys == [(1,), (3,), (8,), (10,)]  # 3 at 22:30 UTC in, 4 at 23:30 UTC out

    def test_backlog_without_basis_follows_everything(self, backend: Backend) -> None:
        """With no basis, everything=True counts all the tenant's rows and False counts none."""
        assert backend.connector.backlog(target(basis=None, everything=True)).count == 7
        assert backend.connector.backlog(target(basis=None, everything=False)).count == 0
        assert backend.connector.select_expired(target(basis=None), None, 10) == []

    def test_a_null_basis_never_expires(self, backend: Backend) -> None:
        """A row whose basis is NULL is neither counted nor selected."""
        keys = backend.connector.select_expired(target(), None, 100)
        assert (7,) not in keys
        assert keys == EXPIRED_PEOPLE

    # select_expired

    def test_select_expired_pages_through_keys_in_order(self, backend: Backend) -> None:
        """Keyset pages come in key order, each continuing exactly after the previous one."""
        assert pages(backend.connector, target(), 2) == [[(1,), (3,)], [(4,), (8,)], [(10,)]]

    def test_select_expired_never_returns_held_keys(self, backend: Backend) -> None:
        """Keys under a legal hold are never selected, on any page."""
        found = pages(backend.connector, target(held=frozenset({(3,), (8,)})), 1)
        assert found == [[(1,)], [(4,)], [(10,)]]

    def test_select_expired_pages_composite_keys(self, backend: Backend) -> None:
        """Composite keys page in tuple order; the union of pages is every expired link."""
        found = pages(backend.connector, link_target(), 2)
        assert found == [[(1, 1), (1, 2)], [(2, 1), (3, 1)], [(4, 1), (4, 3)]]
        assert [key for page in found for key in page] == EXPIRED_LINKS
        held = pages(backend.connector, link_target(held=frozenset({(1, 2), (4, 1)})), 3)
        assert held == [[(1, 1), (2, 1), (3, 1)], [(4, 3)]]

    # apply: delete and unlink

    def test_delete_removes_grandchildren_children_and_rows(self, backend: Backend) -> None:
        """DELETE removes the rows and every dependent row, counting each table."""
        keys = backend.connector.select_expired(target(), None, 100)
        counts = backend.connector.apply(target(), Change.DELETE, keys)
        assert dict(counts) == {"photo_tag": 4, "photo": 3, "membership": 7, "person": 5}
        assert [r["id"] for r in backend.rows("person")] == [2, 5, 6, 7, 9]
        assert [r["id"] for r in backend.rows("photo")] == [4, 5]
        assert [r["id"] for r in backend.rows("photo_tag")] == [5, 6]
        assert backend.connector.backlog(target()).count == 0

    def test_delete_rechecks_keys_inside_the_transaction(self, backend: Backend) -> None:
        """Keys of another tenant, not expired, NULL-based or held are passed in and kept."""
        before = backend.snapshot()
        everyone = [(r["id"],) for r in before["person"]]
        counts = backend.connector.apply(target(held=frozenset({(3,)})), Change.DELETE, everyone)
        assert dict(counts) == {"photo_tag": 3, "photo": 2, "membership": 5, "person": 4}
        kept = {2, 3, 5, 6, 7, 9}
        assert backend.rows("person") == [r for r in before["person"] if r["id"] in kept]
        assert backend.rows("photo") == [r for r in before["photo"] if r["person_id"] in kept]

    def test_unlink_removes_link_rows_only(self, backend: Backend) -> None:
        """UNLINK deletes expired link rows (composite keys) and nothing else."""
        before = backend.snapshot()
        every_link = [(r["person_id"], r["group_id"]) for r in before["membership"]]
        counts = backend.connector.apply(link_target(), Change.UNLINK, every_link)
        assert dict(counts) == {"membership": 6}
        left = [(r["person_id"], r["group_id"]) for r in backend.rows("membership")]
        assert left == [(1, 3), (3, 2), (6, 2)]
        after = backend.snapshot()
        del after["membership"], before["membership"]
        assert after == before

    def test_apply_without_keys_changes_nothing(self, backend: Backend) -> None:
        """An empty batch changes nothing."""
        before = backend.snapshot()
        assert not any(backend.connector.apply(target(), Change.DELETE, []).values())
        assert backend.snapshot() == before

    # apply: anonymise

    def test_anonymise_writes_the_documented_values(self, backend: Backend) -> None:
        """keyed_hash, null, postcode_digits and year give their documented values."""
        before = {r["id"]: r for r in backend.rows("person")}
        where = target(masks=FULL_MASKS)
        assert backend.connector.backlog(where).count == 5
        counts = backend.connector.apply(where, Change.ANONYMISE, EXPIRED_PEOPLE)
        assert dict(counts) == {"person": 5}
        after = {r["id"]: r for r in backend.rows("person")}
        masked = {
            i: tuple(r[c] for c in ("name", "email", "postcode", "birth_date"))
            for i, r in after.items()
        }
        assert masked[1] == (keyed_hash("Eva Smit", PEPPER), None, "1234", D(1990, 1, 1))
        assert masked[3] == (keyed_hash("Carla Jansen", PEPPER), None, "3456", D(2001, 1, 1))
        assert masked[4] == (keyed_hash("Daan Visser", PEPPER), None, "4567", D(1975, 1, 1))
        assert masked[8] == (keyed_hash("Hanna Bos", PEPPER), None, "8901", D(2010, 1, 1))
        assert masked[10] == (keyed_hash("Eva Smit", PEPPER), None, None, None)
        assert all(re.fullmatch(r"anon-[0-9a-f]{20}", after[i]["name"]) for i in (1, 3, 4, 8))
        assert {i: after[i] for i in (2, 5, 6, 7, 9)} == {i: before[i] for i in (2, 5, 6, 7, 9)}

    def test_anonymise_is_idempotent(self, backend: Backend) -> None:
        """After anonymising, nothing is counted or selected and a second apply changes 0."""
        where = target(masks=FULL_MASKS)
        backend.connector.apply(where, Change.ANONYMISE, EXPIRED_PEOPLE)
        once = backend.snapshot()
        assert backend.connector.backlog(where).count == 0
        assert backend.connector.select_expired(where, None, 100) == []
        again = backend.connector.apply(where, Change.ANONYMISE, EXPIRED_PEOPLE)
        assert dict(again) == {"person": 0}
        assert backend.snapshot() == once

    def test_fixed_mask_writes_its_text_once(self, backend: Backend) -> None:
        """A fixed mask writes its text; rows holding that text are done."""
        where = target(masks=(ColumnMask("name", Mask.FIXED, "Former member"),))
        counts = backend.connector.apply(where, Change.ANONYMISE, EXPIRED_PEOPLE)
        assert dict(counts) == {"person": 5}
        names = {r["id"]: r["name"] for r in backend.rows("person")}
        assert {names[k] for (k,) in EXPIRED_PEOPLE} == {"Former member"}
        assert names[6] == "Fleur de Wit"
        assert backend.connector.backlog(where).count == 0

    def test_a_value_that_only_looks_like_a_pseudonym_is_hashed(self, backend: Backend) -> None:
        """An e-mail shaped like 'anon-' + 20 characters, not hex, still counts and is hashed."""
        where = target(masks=(ColumnMask("email", Mask.KEYED_HASH),))
        assert backend.connector.backlog(where).count == 5
        backend.connector.apply(where, Change.ANONYMISE, EXPIRED_PEOPLE)
        emails = {r["id"]: r["email"] for r in backend.rows("person")}
        assert emails[8] == keyed_hash(LOOKALIKE, PEPPER)
        assert all(is_pseudonym(emails[k]) for (k,) in EXPIRED_PEOPLE)
        assert backend.connector.backlog(where).count == 0

    def test_pseudonyms_are_stable_per_pepper(self, backend: Backend) -> None:
        """The same value gives the same pseudonym under one pepper, another under another."""
        masks = (ColumnMask("name", Mask.KEYED_HASH),)
        backend.connector.apply(target(masks=masks), Change.ANONYMISE, EXPIRED_PEOPLE)
        other = backend.connector_with(OTHER_PEPPER)
        other.apply(target(tenant=2, masks=masks), Change.ANONYMISE, [(2,), (5,)])
        names = {r["id"]: r["name"] for r in backend.rows("person")}
        assert names[1] == names[10] == keyed_hash("Eva Smit", PEPPER)
        assert names[2] == keyed_hash("Eva Smit", OTHER_PEPPER)
        assert names[2] != names[1]

    # transactions and errors

    def test_a_failing_batch_changes_nothing(
        self, backend: Backend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When apply fails midway, the whole batch is rolled back; no row value leaks."""
        spec = backend.break_delete(monkeypatch)
        before = backend.snapshot()
        with pytest.raises(ConnectorError) as caught:
            backend.connector.apply(target(spec), Change.DELETE, EXPIRED_PEOPLE)
        assert backend.snapshot() == before
        message = str(caught.value)
        values = [r[c] for r in before["person"] for c in ("name", "email", "postcode")]
        assert [v for v in values if v and v in message] == []


class TenancyContract:
    """Tenant values compared exactly, dependents kept within the tenant, odd time bases."""

    def test_a_tenant_text_converts_exactly_to_an_integer_column(self, backend: Backend) -> None:
        """A customer's tenant written as text ("1") selects what the number 1 selects."""
        assert backend.connector.select_expired(target(tenant="1"), None, 100) == EXPIRED_PEOPLE
        assert backend.connector.backlog(target(tenant="2")).count == 2

    @pytest.mark.parametrize("value", ["01", "1abc", "+1", "1.0", True, 1.0, None])
    def test_a_tenant_value_that_does_not_convert_exactly_is_refused(
        self, backend: Backend, value: Any
    ) -> None:
        """'01', '1abc', a bool or a fraction for an integer tenant column is refused by
        every primitive, never left to an implicit cast; nothing changes."""
        before = backend.snapshot()
        where = target(tenant=value)
        error = ConnectorError if value is None else TenantValueError
        for call in (
            lambda: backend.connector.backlog(where),
            lambda: backend.connector.select_expired(where, None, 10),
            lambda: backend.connector.apply(where, Change.DELETE, EXPIRED_PEOPLE),
        ):
            with pytest.raises(error) as caught:
                call()
            assert caught.value.transient is False
        assert backend.snapshot() == before

    @pytest.mark.parametrize(
        ("tenant", "expected"),
        [
            *(("kdv-a", [(1,)]), ("KDV-A", [(2,)]), ("kdv-á", [(3,)]), (1042, [(5,)])),
            *(("1042", [(5,)]), ("01042", [(6,)]), ("1042b", [(7,)]), ("kdv", [])),
        ],
    )
    def test_a_text_tenant_matches_only_its_exact_value(
        self, backend: Backend, tenant: Any, expected: list[Key]
    ) -> None:
        """No collation widens a text tenant: case, accents and trailing spaces count, and
        the number 1042 is the text '1042', not '01042'."""
        where = Target(TEXT_CHILD, tenant, "left_on", CUTOFF_DATE, CUTOFF_INSTANT)
        assert backend.connector.select_expired(where, None, 100) == expected
        assert backend.connector.backlog(where).count == len(expected)
        before = backend.snapshot()
        everyone = [(r["id"],) for r in before["text_child"]]
        assert dict(backend.connector.apply(where, Change.DELETE, everyone)) == {
            "text_child": len(expected)
        }
        assert backend.rows("text_child") == [
            r for r in before["text_child"] if (r["id"],) not in expected
        ]

    def test_verify_refuses_references_that_leave_out_the_tenant_column(
        self, backend: Backend
    ) -> None:
        """Key [org, id] with references {child_id: id}: a fatal problem on the dependent's
        references, saying what to add."""
        [problem] = backend.connector.verify([ORG_CHILD])
        assert (problem.table, problem.part, problem.fatal) == ("org_photo", "references", True)
        assert "add `org: org` to its references" in problem.message

    def test_dependents_of_another_tenant_with_the_same_key_are_kept(
        self, backend: Backend
    ) -> None:
        """Deleting tenant 1's child 7 deletes tenant 1's photo of child 7 only, even with
        references that leave out the tenant column: the dependent is filtered by it too."""
        before = backend.snapshot()
        where = Target(ORG_CHILD, 1, "left_on", CUTOFF_DATE, CUTOFF_INSTANT)
        assert backend.connector.select_expired(where, None, 10) == [(1, 7), (1, 8)]
        counts = backend.connector.apply(where, Change.DELETE, [(1, 7)])
        assert dict(counts) == {"org_photo": 1, "org_child": 1}
        assert backend.rows("org_photo") == [r for r in before["org_photo"] if r["id"] != 1]
        assert backend.rows("org_child") == [
            r for r in before["org_child"] if (r["org"], r["id"]) != (1, 7)
        ]

    def test_a_basis_before_1900_is_a_placeholder_never_expired(self, backend: Backend) -> None:
        """Dates before 1900 are never selected, counted or the oldest; validate counts them."""
        where = Target(ODD, 1, "left_on", CUTOFF_DATE, CUTOFF_INSTANT)
        assert backend.connector.select_expired(where, None, 10) == [(3,), (4,)]
        assert backend.connector.backlog(where) == Backlog(2, D(1900, 1, 1))
        assert backend.connector.date_quality("odd", "left_on") == DateQuality(2)
        backend.connector.apply(where, Change.DELETE, [(r["id"],) for r in SEED["odd"]])
        assert [r["id"] for r in backend.rows("odd")] == [1, 2, 5, 6]


_SLOW = {
    "sqlite": "SELECT p.* FROM person p, (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL "
    "SELECT x + 1 FROM n) SELECT x FROM n)",
    "postgresql": "SELECT p.* FROM person p, LATERAL (SELECT pg_sleep(30)) s",
    "mysql": "SELECT * FROM person WHERE SLEEP(30) = 0",
}


@contextlib.contextmanager
def _locked(url: str) -> Iterator[None]:
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


class TestSqlConnector(ContractTests, TenancyContract):
    """The SQL connector on SQLite, PostgreSQL and MariaDB."""

    @pytest.fixture
    def backend(self, any_db_url: str) -> Iterator[Backend]:
        """The seeded schema in a fresh database, with an open SqlConnector."""
        backend = SqlBackend(any_db_url)
        try:
            yield backend
        finally:
            backend.close()

    def test_verify_warns_about_an_unindexed_time_basis(self, backend: Backend) -> None:
        """A time basis without an index is a non-fatal problem (a run may go on).

        SQL connectors only: the in-memory one has no indexes to miss."""
        problems = backend.connector.verify([Table("person", key=("id",), dates=("birth_date",))])
        assert [(p.column, p.fatal) for p in problems] == [("birth_date", False)]

    # timeouts: SQL connectors only (the in-memory one has no locks and no slow statements)

    def test_a_held_lock_raises_lock_timeout_within_the_timeout(self, backend: Backend) -> None:
        """Another session's lock on the table makes a count fail at the lock timeout with a
        LockTimeout (not transient) that names the table and the timeout."""
        assert isinstance(backend, SqlBackend)
        quick = SqlConnector(backend.url, pepper=PEPPER, timeouts=Timeouts(lock_seconds=1))
        quick.open()
        try:
            with _locked(backend.url):
                started = time.monotonic()
                with pytest.raises(LockTimeout) as caught:
                    quick.backlog(target())
                waited = time.monotonic() - started
        finally:
            quick.close()
        assert waited < 1 + 5
        assert caught.value.transient is False
        assert "person" in str(caught.value)
        assert "lock timeout (1 s)" in str(caught.value)

    def test_a_long_statement_raises_statement_timeout(self, backend: Backend) -> None:
        """A statement that would run for long is cancelled at the statement timeout with a
        StatementTimeout (not transient); the connector's next statement runs normally."""
        assert isinstance(backend, SqlBackend)
        with backend._reader.begin() as conn:
            conn.execute(sa.text(f"CREATE VIEW slow_person AS {_SLOW[backend.dialect]}"))
        quick = SqlConnector(backend.url, pepper=PEPPER, timeouts=Timeouts(statement_seconds=1))
        quick.open()
        try:
            slow = Table("slow_person", key=("id",), dates=("left_on",), tenant_column="tenant")
            started = time.monotonic()
            with pytest.raises(StatementTimeout) as caught:
                quick.backlog(target(slow))
            waited = time.monotonic() - started
            assert quick.backlog(target()).count == 5
        finally:
            quick.close()
        assert waited < 1 + 5
        assert caught.value.transient is False
        assert "statement timeout (1 s)" in str(caught.value)


class TestMemoryConnector(ContractTests, TenancyContract):
    """The in-memory connector used by the worker's unit tests."""

    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        """A MemoryConnector seeded with the same rows."""
        backend = MemoryBackend()
        try:
            yield backend
        finally:
            backend.close()


def test_unreachable_database_raises_a_transient_error_without_password() -> None:
    """A refused connection raises a transient ConnectorError whose message masks the password."""
    connector = SqlConnector("postgresql+psycopg://user:s3cret@127.0.0.1:1/x", pepper=PEPPER)
    try:
        with pytest.raises(ConnectorError) as caught:
            connector.open()
        assert caught.value.transient is True
        assert "s3cret" not in str(caught.value)
        assert "user:***@127.0.0.1:1/x" in str(caught.value)
        assert caught.value.__cause__ is not None
        with pytest.raises(ConnectorError):  # a failed open leaves the connector closed
            connector.open()
    finally:
        connector.close()
