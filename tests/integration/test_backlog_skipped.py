"""The backlog a run publishes after a rule's batches when some row was skipped in a way the
page loop does not see itself: a record hold that lands after the page was chosen, caught
by the batch's own guard inside its transaction (worker/batches.py, `run_batches`). The
published figures must still be what a plan counts right after the run, on every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import kidsapp
from tests.gate_support import OLD, config, run, run_with_late_hold
from tests.support import PEPPER
from worker.events import BatchApplied, RuleEvaluated
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
    report, seen, placed = run_with_late_hold(cfg, any_db_url, state, key)
    [planned], _ = run(cfg, any_db_url, state, dry_run=True)

    assert placed and not report.error
    if action == "delete":
        assert set(kidsapp.rows_by_id(any_db_url)) == {2}
    (applied,) = seen.of(BatchApplied)
    assert applied.held == (key,)
    [counted] = planned.rules
    assert counted.eligible == 1  # the held row is still owed
    last = seen.of(RuleEvaluated)[-1]
    assert (last.eligible, last.lag_seconds) == (counted.eligible, counted.lag_seconds)
