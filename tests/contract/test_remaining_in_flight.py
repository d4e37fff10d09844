"""`Connector.remaining` of a batch whose transaction is still in flight: another session's
`apply` (or keyless delete) stopped in its `prepare`, where the worker records the batch's
intent before COMMIT. On every SQL backend `remaining` waits for that transaction and answers
with what it committed or rolled back; one in flight for longer than the lock timeout raises
`LockTimeout`. (The in-memory connector changes its rows in place: nothing is in flight.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

import pytest
import sqlalchemy as sa

from connectors.base import Change, Key, LockTimeout, Table, Target, Timeouts
from connectors.sql import SqlConnector
from tests.contract.backends import (
    CUTOFF_DATE,
    CUTOFF_INSTANT,
    EXPIRED_PEOPLE,
    FULL_MASKS,
    PEPPER,
    SqlBackend,
    target,
)
from tests.inflight import Beside, Holder

# A table without a key: its rows are named by their values. Tenant 1's two identical
# expired visits, one recent, and another tenant's expired one.
VISIT = sa.Table(
    "visit",
    sa.MetaData(),
    sa.Column("tenant", sa.Integer, nullable=False),
    sa.Column("child", sa.String(40)),
    sa.Column("on_day", sa.Date),
)
OLD, NEW = dt.date(2020, 1, 1), dt.date(2025, 1, 1)
VISITS = [(1, "Eva Smit", OLD), (1, "Eva Smit", OLD), (1, "Daan Visser", NEW), (2, "Ids Kok", OLD)]
VISIT_TABLE = Table("visit", key=(), dates=("on_day",), tenant_column="tenant")
PERSONAL = ("Eva", "Smit", "Daan", "Visser", "Carla", "Hanna", "@x.org", "1234 AB")


@pytest.fixture
def backend(any_db_url: str) -> Iterator[SqlBackend]:
    backend = SqlBackend(any_db_url)
    try:
        yield backend
    finally:
        backend.close()


def remaining(
    backend: SqlBackend, where: Target, change: Change, keys: list[Key]
) -> Beside[set[Key]]:
    """`remaining` asked from a connector of its own (another process's)."""
    asker = backend.connector_with(PEPPER)
    return Beside(lambda: asker.remaining(where, change, keys))


def _visits(backend: SqlBackend) -> Target:
    engine = sa.create_engine(backend.url)
    try:
        VISIT.metadata.create_all(engine)
        with engine.begin() as conn:
            rows = [dict(zip(VISIT.c.keys(), v, strict=True)) for v in VISITS]
            conn.execute(sa.insert(VISIT), rows)
    finally:
        engine.dispose()
    return Target(VISIT_TABLE, 1, "on_day", CUTOFF_DATE, CUTOFF_INSTANT)


@pytest.mark.parametrize("roll_back", [False, True], ids=["committed", "rolled-back"])
def test_remaining_waits_for_a_delete_in_flight(backend: SqlBackend, roll_back: bool) -> None:
    """Keys a batch in flight deletes: once it commits they are gone; rolled back, there."""
    holder = Holder(
        lambda prepare: backend.connector.apply(
            target(), Change.DELETE, [(1,), (3,)], prepare=prepare
        )
    )
    holder.start()
    asked = remaining(backend, target(), Change.DELETE, EXPIRED_PEOPLE)
    found = asked.of(holder, backend.url, roll_back=roll_back)
    assert found == (set(EXPIRED_PEOPLE) if roll_back else {(4,), (8,), (10,)})


@pytest.mark.parametrize("roll_back", [False, True], ids=["committed", "rolled-back"])
def test_remaining_waits_for_an_anonymise_in_flight(backend: SqlBackend, roll_back: bool) -> None:
    """Rows a batch in flight masks: once it commits they are masked (the "not yet masked"
    test reads the committed row, not the one seen before the wait); rolled back, not."""
    masked = target(masks=FULL_MASKS)
    holder = Holder(
        lambda prepare: backend.connector.apply(
            masked, Change.ANONYMISE, [(4,), (8,)], prepare=prepare
        )
    )
    holder.start()
    asked = remaining(backend, masked, Change.ANONYMISE, [(4,), (8,), (10,)])
    found = asked.of(holder, backend.url, roll_back=roll_back)
    assert found == ({(4,), (8,), (10,)} if roll_back else {(10,)})


@pytest.mark.parametrize("roll_back", [False, True], ids=["committed", "rolled-back"])
def test_remaining_waits_for_a_keyless_delete_in_flight(
    backend: SqlBackend, roll_back: bool
) -> None:
    """A table without a key: rows named by their values, deleted by a batch in flight."""
    where = _visits(backend)
    holder = Holder(lambda prepare: backend.connector.delete_expired(where, 10, prepare=prepare))
    holder.start()
    rows: Sequence[Key] = backend.connector.scan_keys(where, None, 0)
    asked = remaining(backend, where, Change.DELETE, sorted(set(rows)))
    found = asked.of(holder, backend.url, roll_back=roll_back)
    recent = {r for r in rows if r[2] == NEW}
    assert found == (set(rows) if roll_back else recent)
    assert len(set(rows)) == 2  # the identical visits are one row's values


def test_a_batch_in_flight_past_the_lock_timeout_fails_remaining(backend: SqlBackend) -> None:
    """The wait ends at the lock timeout: LockTimeout, naming the table, never a row's
    values; once the batch committed, the same question is answered."""
    holder = Holder(
        lambda prepare: backend.connector.apply(
            target(), Change.DELETE, [(1,), (3,)], prepare=prepare
        )
    )
    holder.start()
    impatient = SqlConnector(backend.url, pepper=PEPPER, timeouts=Timeouts(lock_seconds=0.2))
    impatient.open()
    try:
        with pytest.raises(LockTimeout) as raised:
            impatient.remaining(target(), Change.DELETE, EXPIRED_PEOPLE)
        holder.end()
        after = impatient.remaining(target(), Change.DELETE, EXPIRED_PEOPLE)
    finally:
        impatient.close()
    message = str(raised.value)
    assert "cannot read rows of person: lock timeout" in message
    assert not [word for word in PERSONAL if word in message], message
    assert after == {(4,), (8,), (10,)}
