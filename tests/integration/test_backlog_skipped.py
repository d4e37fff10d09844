"""The backlog a run publishes after a rule's batches when some row was skipped in a way the
page loop does not see itself: a record hold that lands after the page was chosen, caught
by the batch's own guard inside its transaction (worker/batches.py, `run_batches`). The
published figures must still be what a plan counts right after the run, on every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests import kidsapp
from tests.gate_support import OLD, Recorder, config, place, run
from tests.support import NOW, PEPPER
from worker.app import build_runner, run_pairs, subscribe_state
from worker.events import BatchApplied, EventBus, RuleEvaluated
from worker.keys import record_key_hash
from worker.state import StateStore

ANONYMISE = {"action": "anonymise", "with": {"name": {"fixed": "anonymised"}, "health": "null"}}


@pytest.mark.parametrize("action", ["delete", "anonymise"])
def test_a_hold_the_guard_catches_is_still_published_as_left(
    tmp_path: Path, any_db_url: str, state: StateStore, action: str
) -> None:
    extra: dict[str, Any] = ANONYMISE if action == "anonymise" else {}
    product = kidsapp.mapping(rules=[kidsapp.rule(**extra)])
    cfg = config(tmp_path, product=product, customers={"kdv-a": {}})
    kidsapp.create(any_db_url, [(i, 1, OLD) for i in range(1, 6)])
    key = record_key_hash(PEPPER, "kdv-a", kidsapp.PRODUCT, "child", (2,))
    bus = EventBus()
    subscribe_state(bus, state, lambda: NOW)
    seen = Recorder()
    bus.subscribe(seen)
    runner = build_runner(
        cfg, {kidsapp.URL_ENV: any_db_url}, bus, pepper=PEPPER, clock=lambda: NOW, store=state
    )
    original = runner.gatekeeper.active_holds
    product = sa.make_url(any_db_url).database
    inside = {"transaction": False, "placed": False}

    def began(conn: sa.Connection) -> None:
        if conn.engine.url.database == product:
            inside["transaction"] = True

    def ended(conn: sa.Connection) -> None:
        if conn.engine.url.database == product:
            inside["transaction"] = False

    def late_hold(customer: str, product: str) -> Any:
        # The first read of holds inside a product transaction is a batch's guard.
        if inside["transaction"] and not inside["placed"]:
            inside["placed"] = True
            place(state, customer="kdv-a", product=kidsapp.PRODUCT, table="child", key_hash=key)
        return original(customer, product)

    runner.gatekeeper.active_holds = late_hold  # type: ignore[method-assign]
    events = (("begin", began), ("commit", ended), ("rollback", ended))
    for name, fn in events:
        sa.event.listen(sa.engine.Engine, name, fn)
    try:
        [report] = run_pairs(runner, list(cfg.pairs()), NOW, dry_run=False)
    finally:
        for name, fn in events:
            sa.event.remove(sa.engine.Engine, name, fn)
    [planned], _ = run(cfg, any_db_url, state, dry_run=True)

    assert inside["placed"] and not report.error
    if action == "delete":
        assert set(kidsapp.rows_by_id(any_db_url)) == {2}
    (applied,) = seen.of(BatchApplied)
    assert applied.held == (key,)
    [counted] = planned.rules
    assert counted.eligible == 1  # the held row is still owed
    last = seen.of(RuleEvaluated)[-1]
    assert (last.eligible, last.lag_seconds) == (counted.eligible, counted.lag_seconds)
