"""An idle run whose lease is lost while its last records wait to be written with other runs'
(worker/idleends.py), on SQLite and PostgreSQL state, in the tick of
tests/integration/test_idle_ends.py (kdv-5 to 7 written together at the end).

A waiting run's lease is renewed until its records are written; when the renewals stop for
the lease time (the state database out of this process's reach, the process stalled), the
lease expires and another process takes the pair over and runs it in the same tick. The
waiting run's records must then not be written: the pair would have two runs in the tick, both
succeeded, and the process whose lease was taken would report its run as succeeded. As a
run whose lease is lost between two batches, it ends interrupted, and the pair is the new
holder's; as a process killed while runs wait, it leaves no record (it changed nothing).

Before, the waiting run's records were written as succeeded, and its lease's end (not its
row any more) changed nothing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from tests.integration.test_idle_ends import (
    CUSTOMERS,
    _config,
    _product,
    _records,
    _runner,
    store,  # noqa: F401  (the fixture, by name)
)
from tests.integration.test_run_end_folded import query
from tests.support import NOW
from worker.app import run_pairs
from worker.events import Event, Outcome, RunFinished, RunRecorded
from worker.leases import Lease, Leases, pair_tick
from worker.state import StateStore
from worker.verify import verify

LOST = "kdv-5"


def test_a_waiting_runs_lease_taken_over_leaves_the_pair_to_its_new_holder(
    tmp_path: Path,
    store: StateStore,  # noqa: F811
) -> None:
    config = _config(tmp_path)
    pairs = {c.customer: (c, p) for c, p in config.pairs()}
    taken: dict[str, Any] = {}
    seen: list[Event] = []

    def taking_over(event: Event) -> None:
        seen.append(event)
        if not (isinstance(event, RunFinished) and event.customer == CUSTOMERS[-1]):
            return
        # kdv-5 waits. Its renewals stopped for longer than the lease time (as `Lease.lost`
        # measures it: since the last renewal), and another process took the expired lease.
        mine = taken[LOST]
        mine._confirmed -= 2 * mine._leases.seconds
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2 * mine._leases.seconds)
        other = Leases(store, mine._leases.seconds, clock=lambda: later, holder="elsewhere|1")
        customer, mapping = pairs[LOST]
        taken["other"] = other.take(LOST, mapping.product, pair_tick(customer, mapping, NOW))

    runner = _runner(config, _product(tmp_path, "p.db"), store, taking_over)
    assert runner.leases is not None
    take = runner.leases.take

    def keeping(customer: str, *args: Any, **kwargs: Any) -> Any:
        found = take(customer, *args, **kwargs)
        taken[customer] = found
        return found

    runner.leases.take = keeping  # type: ignore[method-assign]
    with capture_logs() as logs:
        reports = run_pairs(runner, config.pairs(), NOW, dry_run=False)
    assert isinstance(taken["other"], Lease) and taken["other"].taken_from is not None

    outcomes = {r.customer: r.outcome for r in reports}
    assert outcomes == {
        c: Outcome.INTERRUPTED if c == LOST else Outcome.SUCCEEDED for c in CUSTOMERS
    }
    assert [e["why"] for e in logs if e["event"] == "lease.lost"] != []
    # No record of the run whose lease was taken: the pair is the new holder's in this tick.
    assert {c for c, _kind, _rule in _records(store)} == set(CUSTOMERS) - {LOST}
    assert {r.customer for r in query(store, "SELECT customer FROM runs")} == set(CUSTOMERS) - {
        LOST
    }
    [lease] = query(store, f"SELECT holder, done_at FROM leases WHERE customer = '{LOST}'")
    assert (lease.holder, lease.done_at) == ("elsewhere|1", None)
    recorded = [e for e in seen if isinstance(e, RunRecorded) and e.customer == LOST]
    assert [(e.outcome, e.stored) for e in recorded] == [(Outcome.INTERRUPTED, False)]
    # kdv-6 and kdv-7 were written together, their checkpoint covering the head.
    [(head,)] = query(store, "SELECT seq FROM audit_head")
    [(last,)] = query(store, "SELECT max(seq) FROM checkpoints")
    assert last == head
    found = verify(store)
    assert found.ok and not found.open_runs, found
