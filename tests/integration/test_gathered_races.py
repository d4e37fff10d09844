"""What a run's queued bookkeeping (worker/state/gather.py) must not do to other writers.

A run settles what a crashed run of its pair left open, and closes that run with a
`run.finished` (crashed). That record ends another run: if it waited in the settling run's
queue, the runs table would say the crashed run is still open until the settling run's next
write, and anyone reconciling meanwhile (`audit reconcile`, the start of another
`run --once`) would close it a second time: two `run.finished` records for one run.
"""

from __future__ import annotations

import contextvars
import uuid
from pathlib import Path

import sqlalchemy as sa

from tests.integration.own_config import write_config
from tests.integration.test_timeouts import CUSTOMERS, PRODUCT, ids, seed
from tests.support import NOW, PEPPER
from worker.app import build_runner, reconcile_all, run_pairs, subscribe_state
from worker.audit import AuditTrail
from worker.configload import Config
from worker.events import (
    BatchApplied,
    Event,
    EventBus,
    Outcome,
    RuleEvaluated,
    RunFinished,
    RunStarted,
    Subscriber,
)
from worker.runreport import RunReport
from worker.state import StateStore
from worker.verify import verify


def crashed_run(store: StateStore) -> str:
    """A run of a × kids that started (in this process, now gone from it) and never ended."""
    run_id = uuid.uuid4().hex
    AuditTrail(store, lambda: NOW)(
        RunStarted(run_id=run_id, customer="a", product="kids", at=NOW, policy="p", as_of=NOW)
    )
    return run_id


def pair_a(tmp_path: Path) -> tuple[str, dict[str, str], Config]:
    """Customer a's product database (ids 1 and 2 expired, 3 not), its environment and the
    configuration of a × kids."""
    product_url = f"sqlite:///{tmp_path / 'a.db'}"
    seed(product_url)
    config = write_config(tmp_path / "config", PRODUCT.replace("STATEMENT", "60"), CUSTOMERS)
    return product_url, {"KIDS_A_URL": product_url}, config


def closed_by(run_id: str, settled_by: str) -> RunFinished:
    """The end another process records for a × kids' run `run_id`: crashed, 2 rows."""
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


def run_a(
    config: Config, env: dict[str, str], store: StateStore, meanwhile: Subscriber, *also: Subscriber
) -> RunReport:
    """One real run of a × kids as `run --once` does it; `meanwhile` is subscribed as
    required (what another process does during the run), `also` as observers."""
    bus = EventBus()
    subscribe_state(bus, store, lambda: NOW)
    bus.subscribe(meanwhile, required=True)
    for subscriber in also:
        bus.subscribe(subscriber)
    runner = build_runner(config, env, bus, pepper=PEPPER, clock=lambda: NOW, store=store)
    pairs = [(c, p) for c, p in config.pairs() if c.customer == "a"]
    [report] = run_pairs(runner, pairs, NOW, dry_run=False)
    return report


def finished_records(store: StateStore, run_id: str) -> int:
    with store._engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM audit_events WHERE run_id = :r AND kind = 'run.finished'"
                ),
                {"r": run_id},
            ).scalar_one()
        )


def test_a_crashed_run_is_closed_once_when_another_process_reconciles_meanwhile(
    tmp_path: Path, state_url: str
) -> None:
    product_url, env, config = pair_a(tmp_path)
    store = StateStore(state_url)
    crashed = crashed_run(store)

    def other_process() -> None:
        """`audit reconcile` (or another `run --once` starting) in its own process."""
        theirs = StateStore(state_url)
        bus = EventBus()
        subscribe_state(bus, theirs, lambda: NOW)
        try:
            reconcile_all(config, env, bus, theirs, pepper=PEPPER, clock=lambda: NOW)
        finally:
            theirs.close()

    reconciled: list[bool] = []

    def meanwhile(event: Event) -> None:
        # The run has settled its pair (closing the crashed run) and evaluates its rules.
        if isinstance(event, RuleEvaluated) and not reconciled:
            reconciled.append(True)
            contextvars.Context().run(other_process)

    report = run_a(config, env, store, meanwhile)

    assert reconciled
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert ids(product_url) == [3]
    assert finished_records(store, crashed) == 1
    with store._engine.connect() as conn:
        trail = conn.execute(sa.text("SELECT run_id, kind FROM audit_events ORDER BY seq")).all()
    # In the order the settling run published them: its start, then the end it recorded.
    assert [(r == crashed, k) for r, k in trail] == [
        (True, "run.started"),
        (False, "run.started"),
        (True, "run.finished"),
        (False, "batch.intent"),
        (False, "batch.applied"),
        (False, "run.finished"),
    ]
    found = verify(store)
    assert found.ok and not found.open_runs and not found.unsettled, found
    store.close()


def test_a_run_another_process_closed_records_its_end_once(tmp_path: Path, state_url: str) -> None:
    """A run loses its lease mid-way and the new holder closes it as crashed (its
    reconciliation settles the batch the run applied). When the old run then ends, its end
    is refused, not recorded a second time: one run.finished per run, the first one kept,
    and the run's report says why. The trail verifies; every changed row is accounted for."""
    product_url, env, config = pair_a(tmp_path)
    store = StateStore(state_url)
    closed: list[str] = []

    def new_holder(run_id: str) -> None:
        """The process that took the lease over: it closes the old holder's run."""
        theirs = StateStore(state_url)
        try:
            AuditTrail(theirs, lambda: NOW)(closed_by(run_id, "the new lease holder"))
        finally:
            theirs.close()

    def meanwhile(event: Event) -> None:
        if isinstance(event, BatchApplied) and not closed:
            closed.append(event.run_id)
            contextvars.Context().run(new_holder, event.run_id)

    report = run_a(config, env, store, meanwhile)

    [run_id] = closed
    assert ids(product_url) == [3]
    assert "already ended (crashed)" in (report.error or "")
    assert finished_records(store, run_id) == 1
    with store._engine.connect() as conn:
        outcome = conn.execute(
            sa.text("SELECT outcome FROM runs WHERE run_id = :r"), {"r": run_id}
        ).scalar_one()
    assert outcome == "crashed"
    found = verify(store)
    assert found.ok and not found.open_runs and not found.unsettled, found
    store.close()
