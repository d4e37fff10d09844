"""A run's end is recorded once (worker/state/runlog.py, `finish_run_in`), also when two
processes close a crashed run at the same instant: the same outcome and time are not the
same end when the rest differs (each closer names itself in the error). Only a retry of
the very same end (its first attempt committed, its reply lost) changes nothing."""

from __future__ import annotations

import contextvars
from pathlib import Path

import pytest

from tests.integration.test_gathered_races import (
    closed_by,
    crashed_run,
    finished_records,
    pair_a,
    run_a,
)
from tests.support import NOW, PEPPER
from worker.app import subscribe_state
from worker.audit import AuditTrail
from worker.errors import StateError
from worker.events import BatchApplied, Event, EventBus, Outcome
from worker.metrics import Metrics
from worker.reconcile import Reconciler
from worker.state import StateStore
from worker.state.runlog import RunClosed
from worker.status import read_status


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


def test_a_refused_end_is_not_counted_as_a_success(tmp_path: Path, state_url: str) -> None:
    """The old holder's end is refused (the trail keeps the new holder's `crashed`); its
    metrics must not count a succeeded run nor move the last success to its end: a
    restarted daemon would restore neither (worker/status.py reads the runs table)."""
    _, env, config = pair_a(tmp_path)
    store = StateStore(state_url)
    closed: list[str] = []

    def meanwhile(event: Event) -> None:
        if isinstance(event, BatchApplied) and not closed:
            closed.append(event.run_id)
            theirs = StateStore(state_url)
            try:
                trail = AuditTrail(theirs, lambda: NOW)
                contextvars.Context().run(trail, closed_by(event.run_id, "new-holder"))
            finally:
                theirs.close()

    metrics = Metrics()
    try:
        report = run_a(config, env, store, meanwhile, metrics)
        snapshot = read_status(store, [("a", "kids")])
    finally:
        store.close()
    assert "already ended (crashed)" in (report.error or "")
    assert ("a", "kids") not in snapshot.last_success  # the trail knows no success of it
    labels = {"product": "kids", "customer": "a"}
    sample = metrics.registry.get_sample_value
    assert sample("retention_runs_total", {**labels, "outcome": "succeeded"}) in (None, 0.0)
    assert sample("retention_last_success_timestamp_seconds", labels) in (None, 0.0)
    # This process ends the run as interrupted (its lease was lost), and counts it so.
    assert report.outcome is Outcome.INTERRUPTED
    assert sample("retention_runs_total", {**labels, "outcome": "interrupted"}) == 1.0


def test_a_crashed_run_is_counted_once_by_the_closer_that_recorded_it(
    tmp_path: Path, state_url: str
) -> None:
    """Two processes close the same crashed run (their own reconciliation): one end is
    stored, and only that process's metrics count a `crashed` run."""
    _, _, config = pair_a(tmp_path)
    store = StateStore(state_url)
    try:
        run_id = crashed_run(store)
        counted = []
        for closer in ("reconcile-1", "reconcile-2"):
            bus, metrics = EventBus(), Metrics()
            subscribe_state(bus, store, lambda: NOW)
            bus.subscribe(metrics)
            Reconciler(store, bus, config.catalogue, PEPPER, lambda: NOW)._close_run(
                run_id, "a", "kids", closer
            )
            labels = {"product": "kids", "customer": "a", "outcome": "crashed"}
            counted.append(metrics.registry.get_sample_value("retention_runs_total", labels))
        assert counted == [1.0, None]
        assert finished_records(store, run_id) == 1
    finally:
        store.close()
