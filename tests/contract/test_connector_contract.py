"""The connector contract (connectors/base.py), proved once against every backend.

`ContractTests` and `TenancyContract` hold the tests; each backend class below provides a
`backend` fixture: the SQL connector on SQLite, PostgreSQL and MariaDB (via `any_db_url`)
and the MemoryConnector, seeded with the same rows. The schema, rows and backends are in
`tests/contract/backends.py`, so the suite does not depend on the demo schemas.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.anonymise import is_pseudonym, keyed_hash
from connectors.base import (
    Aggregated,
    Backlog,
    Change,
    ColumnMask,
    ConnectorError,
    DateQuality,
    Dependent,
    FirstOf,
    Key,
    LockTimeout,
    Mask,
    StatementTimeout,
    Table,
    Target,
    TenantValueError,
    Timeouts,
)
from connectors.sql import SqlConnector
from connectors.sqlcount import backlogs
from tests.contract.backends import (
    CUTOFF_DATE,
    CUTOFF_INSTANT,
    EXPIRED_LINKS,
    EXPIRED_PEOPLE,
    FULL_MASKS,
    LOOKALIKE,
    MEMBERSHIP,
    ODD,
    ORG_CHILD,
    OTHER_PEPPER,
    PEPPER,
    PERSON,
    SEED,
    SLOW,
    TEXT_CHILD,
    Backend,
    D,
    MemoryBackend,
    SqlBackend,
    T,
    link_target,
    locked,
    pages,
    target,
)

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

    def test_backlogs_counted_together_equal_each_backlog(self, backend: Backend) -> None:
        """Several targets counted at once (one statement on SQL, connectors.sqlcount) give
        each target's own backlog, in order: tenants, bases of every kind, masks, holds."""
        targets = [
            target(),
            target(tenant=2),
            target(basis="last_seen_at"),
            target(basis=None, everything=True),
            target(basis=None),
            target(basis=FirstOf(("left_on", "last_seen_at"))),
            target(basis=Aggregated("membership", (("person_id", "id"),), "ended_on")),
            target(basis=Aggregated("membership", (("person_id", "id"),), "ended_on", False)),
            target(masks=FULL_MASKS),
            target(held=frozenset({(1,)})),
            link_target(),
            Target(ODD, 1, "left_on", CUTOFF_DATE, CUTOFF_INSTANT),
        ]
        single = [backend.connector.backlog(t) for t in targets]
        assert sum(b.count for b in single) > 0
        assert backlogs(backend.connector, targets) == single
        assert backlogs(backend.connector, targets[:1]) == single[:1]
        assert backlogs(backend.connector, []) == []

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

    def test_preview_counts_what_apply_then_changes_and_changes_nothing(
        self, backend: Backend
    ) -> None:
        """`preview` (what `plan` prints) is, per table, what `apply` of every expired key
        counts right after: nested dependents, held keys left out, masked rows not again."""
        cases = [
            (target(held=frozenset({(3,)})), Change.DELETE),
            (link_target(), Change.UNLINK),
            (target(masks=FULL_MASKS), Change.ANONYMISE),
            (target(masks=FULL_MASKS), Change.ANONYMISE),  # all done: nothing left
        ]
        previews = []
        for where, change in cases:
            before = backend.snapshot()
            preview = backend.connector.preview(where, change)
            assert backend.snapshot() == before
            keys = backend.connector.select_expired(where, None, 100)
            assert preview == dict(backend.connector.apply(where, change, keys))
            previews.append(preview)
        assert previews[0] == {"photo_tag": 3, "photo": 2, "membership": 5, "person": 4}
        assert previews[-1] == {}

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
        assert dict(again) == {}  # no table changed
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
        changed = dict(backend.connector.apply(where, Change.DELETE, everyone))
        # Rows changed per table; a batch that changes nothing reports no table.
        assert changed == ({"text_child": len(expected)} if expected else {})
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
            with locked(backend.url):
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
            conn.execute(sa.text(f"CREATE VIEW slow_person AS {SLOW[backend.dialect]}"))
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
