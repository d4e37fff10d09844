"""What a run's frame decides from state around it (worker/run.py): which runs are in
progress in this process (a reconciliation leaves them alone), whether a run has nothing to
do (then its schema check may stay borrowed: worker/drift.py), and whether its outcome ends
its pair for the tick (its lease marked done: worker/leases.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from connectors.base import Backlog, Target
from worker.approvals import Approval
from worker.events import Outcome
from worker.holds import ActiveHolds
from worker.policy import EffectiveRule

_ACTIVE: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


def active_runs() -> set[str]:
    """Ids of the runs in progress in this process (a reconciliation leaves them alone)."""
    with _ACTIVE_LOCK:
        return set(_ACTIVE)


@contextmanager
def active(run_id: str) -> Iterator[None]:
    """Count the run `run_id` as in progress in this process while the block runs."""
    with _ACTIVE_LOCK:
        _ACTIVE.add(run_id)
    try:
        yield
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.discard(run_id)


def done_for_tick(outcome: Outcome | None) -> bool:
    """Whether a run that ended with `outcome` finishes its pair for the tick (its lease
    marked done): it ran every rule (succeeded, or partial: rows blocked that a second run
    in the same tick would only block again) or failed (the next tick tries again). An
    interrupted run, or one that never ended, releases its lease for another process."""
    return outcome in (Outcome.SUCCEEDED, Outcome.PARTIAL, Outcome.FAILED)


def idle(
    counted: Mapping[str, tuple[Target, Backlog]],
    rules: Sequence[EffectiveRule],
    approvals: Mapping[str, Approval],
    holds: ActiveHolds,
) -> bool:
    """Whether a run has nothing to do: every rule counted, none with a row due, no
    approval that could move a cutoff, and no record hold whose keys it would look up
    (by the table's reflected key). Only then may its schema check stay borrowed."""
    if approvals or len(counted) != len(rules):
        return False
    if any(holds.count_records(rule.subject.table) for rule in rules):
        return False
    return all(backlog.count == 0 for _, backlog in counted.values())
