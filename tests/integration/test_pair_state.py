"""One read at a run's start says whether its pair has open work, holds or approvals
(worker/pairstate.py), on SQLite and PostgreSQL state databases.

For any mix of rows of two customers × two products (holds of every scope, released or
not, for all products or one; approvals of every status; open batches; runs with and
without an outcome), each flag is true exactly when the full read it stands for finds
something. An idle run sends that one read instead of three; a run whose pair has a hold,
an approval or open work still reads it in full and obeys it (the holds, approvals and
settling tests run through the same path).
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_state_round_trips import idle_run
from worker.approvals import ApprovalLedger
from worker.events import EventBus
from worker.holds import HoldLedger
from worker.leases import Lease, Leases
from worker.pairstate import PAIR_STATE_COLUMNS, PairState, pair_state_of, read_pair_state
from worker.reconcile import Reconciler
from worker.state import StateStore
from worker.state.models import approvals, holds, open_batches, runs

AT = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
CUSTOMERS, PRODUCTS = ("kdv-a", "kdv-b"), ("flexkids", "konnect")
STATUSES = ("waiting", "approved", "rejected", "used", "superseded")
OUTCOMES = (None, "succeeded", "failed", "crashed")

HOLD = st.tuples(
    st.sampled_from(CUSTOMERS),
    st.sampled_from((None, *PRODUCTS)),
    st.sampled_from(("pair", "rule", "record")),
    st.booleans(),  # released
)
APPROVAL = st.tuples(
    st.sampled_from(CUSTOMERS), st.sampled_from(PRODUCTS), st.sampled_from(STATUSES)
)
RUN = st.tuples(st.sampled_from(CUSTOMERS), st.sampled_from(PRODUCTS), st.sampled_from(OUTCOMES))
BATCH = st.tuples(st.sampled_from(CUSTOMERS), st.sampled_from(PRODUCTS))


PAIR_ROWS = {
    "held": st.lists(HOLD, max_size=4),
    "asked": st.lists(APPROVAL, max_size=4),
    "ran": st.lists(RUN, max_size=3),
    "batches": st.lists(BATCH, max_size=2),
}
"""A pair's rows in the state database, for `_seed` (hypothesis strategies by argument)."""


def _clear(conn: sa.Connection) -> None:
    for table in (holds, approvals, open_batches, runs):
        conn.execute(sa.delete(table))


def _seed(
    store: StateStore,
    held: list[tuple[str, str | None, str, bool]],
    asked: list[tuple[str, str, str]],
    ran: list[tuple[str, str, str | None]],
    batches: list[tuple[str, str]],
) -> None:
    n = itertools.count()

    def write(conn: sa.Connection) -> None:
        _clear(conn)
        for customer, product, scope, released in held:
            if scope != "pair" and product is None:
                product = PRODUCTS[0]  # a rule's or a record's hold names its product
            conn.execute(
                holds.insert().values(
                    hold_id=f"h{next(n)}",
                    customer=customer,
                    product=product,
                    rule="r" if scope != "pair" else None,
                    table_name="t" if scope == "record" else None,
                    key_hash="k" * 64 if scope == "record" else None,
                    matter="m",
                    reason="r",
                    placed_by="p",
                    placed_at=AT,
                    released_at=AT if released else None,
                    released_by="p" if released else None,
                )
            )
        for customer, product, status in asked:
            conn.execute(
                approvals.insert().values(
                    approval_id=f"a{next(n)}",
                    customer=customer,
                    product=product,
                    rule="r",
                    why="breaker",
                    status=status,
                    requested_at=AT,
                    updated_at=AT,
                    cutoff=AT.date(),
                    eligible=1,
                    bound=1,
                    approvers_needed=1,
                    figures="{}",
                )
            )
        for customer, product, outcome in ran:
            conn.execute(
                runs.insert().values(
                    run_id=f"r{next(n)}",
                    customer=customer,
                    product=product,
                    started_at=AT,
                    outcome=outcome,
                    dry_run=False,
                    rows_changed=0,
                )
            )
        for customer, product in batches:
            conn.execute(
                open_batches.insert().values(
                    run_id=f"b{next(n)}",
                    rule="r",
                    batch=1,
                    customer=customer,
                    product=product,
                    intent_seq=1,
                )
            )

    store.write("seeding", write)


def full_reads(store: StateStore, customer: str, product: str) -> PairState:
    """What the three full reads find, as flags."""
    found = HoldLedger(store).active_for(customer, product)
    settler = Reconciler(store, EventBus(), None, b"pepper", lambda: AT)  # type: ignore[arg-type]
    return PairState(
        open_work=settler._anything_open(customer, product),
        holds=bool(found.pair or found.rules or found.records),
        approvals=bool(ApprovalLedger(store).open_for_pair(customer, product)),
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(**PAIR_ROWS)
def test_each_flag_is_true_exactly_when_its_full_read_finds_something(
    store: StateStore,
    held: list[Any],
    asked: list[Any],
    ran: list[Any],
    batches: list[Any],
) -> None:
    _seed(store, held, asked, ran, batches)
    for customer, product in itertools.product(CUSTOMERS, PRODUCTS):
        assert read_pair_state(store, customer, product) == full_reads(store, customer, product)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(**PAIR_ROWS)
def test_the_lease_that_a_run_takes_reads_the_same_flags(
    store: StateStore,
    held: list[Any],
    asked: list[Any],
    ran: list[Any],
    batches: list[Any],
) -> None:
    """The statement that takes a lease carries the read on PostgreSQL (none elsewhere)."""
    _seed(store, held, asked, ran, batches)
    leases = Leases(store, 60)
    tick = dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=next(TICKS))
    for customer, product in itertools.product(CUSTOMERS, PRODUCTS):
        pair = {"customer": customer, "product": product}
        lease = leases.take(customer, product, tick, also=PAIR_STATE_COLUMNS, also_params=pair)
        assert isinstance(lease, Lease)
        try:
            if store._engine.dialect.name != "postgresql":
                assert lease.also is None
                continue
            assert lease.also is not None
            assert pair_state_of(lease.also) == full_reads(store, customer, product)
        finally:
            lease.end(done=True)


TICKS = itertools.count()


def test_without_a_state_database_nothing_is_known() -> None:
    assert read_pair_state(None, "kdv-a", "flexkids") is None


def test_an_idle_run_reads_its_pair_once_and_not_three_times(
    tmp_path: Path, store: StateStore
) -> None:
    """On PostgreSQL the statement that takes the run's lease reads all three; on SQLite one
    SELECT of its own does."""
    seen = idle_run(tmp_path, store)
    pair = [s for s in seen.sent if "FROM holds" in s and "FROM approvals" in s]
    assert len(pair) == 1, seen.sent  # the one read of all three
    assert "FROM open_batches" in pair[0]
    if store._engine.dialect.name == "postgresql":
        assert pair[0].startswith("WITH taken AS (INSERT INTO leases"), pair[0]
    else:
        assert pair[0].upper().startswith("SELECT"), pair[0]
    reads = [s for s in seen.sent if s.upper().startswith("SELECT")]
    others = [s for s in reads if s not in pair]
    assert not [s for s in others if "FROM holds" in s or "FROM approvals" in s], others
    assert not [s for s in others if "FROM open_batches" in s], others
