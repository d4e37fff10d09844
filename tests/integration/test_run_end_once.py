"""A run's end is recorded once (worker/state/runlog.py, `finish_run_in`), also when two
processes close a crashed run at the same instant: the same outcome and time are not the
same end when the rest differs (each closer names itself in the error). Only a retry of
the very same end (its first attempt committed, its reply lost) changes nothing."""

from __future__ import annotations

import pytest

from tests.integration.test_gathered_races import crashed_run, finished_records
from tests.support import NOW
from worker.audit import AuditTrail
from worker.errors import StateError
from worker.events import Outcome, RunFinished
from worker.state import StateStore
from worker.state.runlog import RunClosed


def closed_by(run_id: str, settled_by: str) -> RunFinished:
    return RunFinished(
        run_id=run_id,
        customer="a",
        product="kids",
        outcome=Outcome.CRASHED,
        at=NOW,
        duration_seconds=0.0,
        processed={("kids.child.left", "delete"): {"child": 2}},
        error=f"RunCrashed: the run ended without finishing; closed by run {settled_by}",
    )


def test_two_closers_at_the_same_instant_record_one_end(state_url: str) -> None:
    store = StateStore(state_url)
    try:
        run_id = crashed_run(store)
        AuditTrail(store, lambda: NOW)(closed_by(run_id, "reconcile-1"))
        with pytest.raises(StateError) as refused:
            AuditTrail(store, lambda: NOW)(closed_by(run_id, "reconcile-2"))
        assert isinstance(refused.value.__cause__, RunClosed)
        assert finished_records(store, run_id) == 1
        [run] = [r for r in store.recent_runs() if r.run_id == run_id]
        assert run.error is not None and run.error.endswith("reconcile-1")
        # The very same end again (a retry that found its record) still changes nothing.
        store.finish_run(run_id, "crashed", NOW, 2, run.error)
    finally:
        store.close()
