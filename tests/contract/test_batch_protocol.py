"""The batch protocol of `Connector.apply`, on every backend: guard, prepare, what changed,
and the primitives that tell afterwards what took effect (`remaining`, `scan_keys`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from connectors.base import AmbiguousCommit, Applied, Change, Key
from connectors.memory import MemoryConnector
from tests.contract.backends import (
    EXPIRED_PEOPLE,
    FULL_MASKS,
    Backend,
    MemoryBackend,
    SqlBackend,
    link_target,
    target,
)


class ProtocolTests:
    def test_apply_reports_the_keys_it_changed_and_rows_per_table(self, backend: Backend) -> None:
        """Keys of another tenant or not expired are passed in; only the changed ones come
        back, with the rows of every table (dependents included)."""
        everyone = [(r["id"],) for r in backend.rows("person")]
        applied = backend.connector.apply(target(), Change.DELETE, everyone)
        assert sorted(applied.changed_keys) == EXPIRED_PEOPLE
        assert dict(applied) == {"photo_tag": 4, "photo": 3, "membership": 7, "person": 5}
        assert applied.held_keys == ()

    def test_the_guard_keeps_what_a_hold_now_covers(self, backend: Backend) -> None:
        """Inside the transaction the guard sees the locked keys; the keys it returns (and
        their dependents) are left alone, the others changed."""
        seen: list[list[Key]] = []

        def guard(locked: Sequence[Key]) -> set[Key]:
            seen.append(sorted(locked))
            return {(3,), (8,)}

        applied = backend.connector.apply(target(), Change.DELETE, EXPIRED_PEOPLE, guard=guard)
        assert seen == [EXPIRED_PEOPLE]
        assert sorted(applied.changed_keys) == [(1,), (4,), (10,)]
        assert sorted(applied.held_keys) == [(3,), (8,)]
        assert [r["id"] for r in backend.rows("person")] == [2, 3, 5, 6, 7, 8, 9]

    def test_a_guard_that_holds_everything_changes_nothing(self, backend: Backend) -> None:
        """Every key held: nothing changes, nothing is prepared."""
        before = backend.snapshot()
        prepared: list[Applied] = []
        applied = backend.connector.apply(
            target(), Change.DELETE, EXPIRED_PEOPLE, guard=set, prepare=prepared.append
        )
        assert (dict(applied), applied.changed_keys, prepared) == ({}, (), [])
        assert backend.snapshot() == before
        applied = backend.connector.apply(
            target(), Change.DELETE, EXPIRED_PEOPLE, guard=lambda keys: set(keys)
        )
        assert (dict(applied), len(applied.held_keys)) == ({}, 5)
        assert backend.snapshot() == before

    def test_prepare_sees_the_change_before_commit_and_can_undo_it(self, backend: Backend) -> None:
        """prepare is told exactly what the transaction changed; raising in it rolls every
        table back."""
        before = backend.snapshot()
        told: list[tuple[dict[str, int], list[Key]]] = []

        def refuse(applied: Applied) -> None:
            told.append((dict(applied), sorted(applied.changed_keys)))
            raise RuntimeError("the audit trail is down")

        with pytest.raises(RuntimeError, match="audit trail is down"):
            backend.connector.apply(target(), Change.DELETE, EXPIRED_PEOPLE, prepare=refuse)
        assert told == [
            ({"photo_tag": 4, "photo": 3, "membership": 7, "person": 5}, EXPIRED_PEOPLE)
        ]
        assert backend.snapshot() == before

    def test_remaining_tells_which_keys_a_change_has_not_reached(self, backend: Backend) -> None:
        """After a delete the deleted keys are not remaining; after an anonymise the masked
        ones are not; keys of another tenant never are."""
        assert backend.connector.remaining(target(), Change.DELETE, EXPIRED_PEOPLE) == set(
            EXPIRED_PEOPLE
        )
        backend.connector.apply(target(), Change.DELETE, [(1,), (3,)])
        assert backend.connector.remaining(target(), Change.DELETE, EXPIRED_PEOPLE) == {
            (4,),
            (8,),
            (10,),
        }
        masked = target(masks=FULL_MASKS)
        backend.connector.apply(masked, Change.ANONYMISE, [(4,)])
        assert backend.connector.remaining(masked, Change.ANONYMISE, [(4,), (8,)]) == {(8,)}
        other_tenant = [(r["id"],) for r in backend.rows("person") if r["tenant"] != 1]
        assert other_tenant
        assert backend.connector.remaining(target(), Change.DELETE, other_tenant) == set()

    def test_scan_keys_pages_through_every_key_of_the_tenant(self, backend: Backend) -> None:
        """Expired or not, in key order, only the tenant's."""
        mine = [(r["id"],) for r in backend.rows("person") if r["tenant"] == 1]
        found: list[Key] = []
        after: Key | None = None
        while page := backend.connector.scan_keys(target(), after, 3):
            found += page
            after = page[-1]
        assert found == mine

    def test_batches_stay_within_the_bind_parameter_limit(self, backend: Backend) -> None:
        """A batch limit exists for every key width and shrinks as keys widen."""
        one, two = backend.connector.batch_limit(1), backend.connector.batch_limit(2)
        assert 1_000 <= two <= one <= 1_000_000


class TestSqlProtocol(ProtocolTests):
    @pytest.fixture
    def backend(self, any_db_url: str) -> Iterator[Backend]:
        backend = SqlBackend(any_db_url)
        try:
            yield backend
        finally:
            backend.close()

    def test_a_wide_key_batch_runs_at_the_limit(self, backend: Backend) -> None:
        """A batch as large as the limit for a two-part key goes through the driver in one
        statement (PostgreSQL refuses more than 65,535 parameters; SQLite has its own
        limit), and finds exactly the rows it names."""
        limit = backend.connector.batch_limit(2)
        keys = [(i % 50, i // 50) for i in range(limit)]
        expected = {
            (r["person_id"], r["group_id"])
            for r in backend.rows("membership")
            if (r["person_id"], r["group_id"]) in set(keys)
        }
        assert expected
        found = backend.connector.remaining(link_target(), Change.UNLINK, keys)
        assert found == expected


class TestMemoryProtocol(ProtocolTests):
    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        backend = MemoryBackend()
        try:
            yield backend
        finally:
            backend.close()

    def test_a_lost_commit_reply_raises_with_what_was_committed(self, backend: Backend) -> None:
        """Fault injection: the change is committed, the caller is told it is ambiguous."""
        memory = backend.connector
        assert isinstance(memory, MemoryConnector)
        memory.lose_commit_reply = True
        with pytest.raises(AmbiguousCommit) as lost:
            memory.apply(target(), Change.DELETE, [(1,)])
        assert sorted(lost.value.applied.changed_keys) == [(1,)]
        assert memory.remaining(target(), Change.DELETE, [(1,)]) == set()
