"""The backlog a run publishes after a rule's batches is the one it leaves behind.

After its batches a rule publishes what is still eligible (the eligible and lag gauges keep
it until the next run). The run counts it again only when its batches skipped some row (a
record hold, a refusal); when the selection came back empty with nothing skipped it knows
nothing is left without reading the rows again (worker/batches.py, `run_batches`). Either
way the published figures must be what a plan counts right after the run: random rows,
record holds on some of the expired ones, batch sizes from one row to more than all, delete
and anonymise, on every backend.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import kidsapp
from tests.gate_support import config, place, run
from tests.support import PEPPER
from worker.events import BatchApplied, RuleEvaluated
from worker.keys import record_key_hash
from worker.state import StateStore

ANONYMISE = {"action": "anonymise", "with": {"name": {"fixed": "anonymised"}, "health": "null"}}


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), st.dates(dt.date(2019, 1, 1), dt.date(2026, 11, 27))),
            st.booleans(),  # held
        ),
        min_size=1,
        max_size=12,
    ),
    batch_size=st.sampled_from([1, 2, 3, 500]),
    anonymise=st.booleans(),
)
def test_the_backlog_published_after_the_batches_is_what_is_left(
    tmp_path_factory: pytest.TempPathFactory,
    any_db_url: str,
    rows: list[tuple[dt.date | None, bool]],
    batch_size: int,
    anonymise: bool,
) -> None:
    folder = tmp_path_factory.mktemp("left")
    kidsapp.drop(any_db_url)
    kidsapp.create(any_db_url, [(i, 1, left) for i, (left, _) in enumerate(rows, 1)])
    extra: dict[str, Any] = ANONYMISE if anonymise else {}
    product = kidsapp.mapping(batch_size=batch_size, rules=[kidsapp.rule(**extra)])
    cfg = config(folder, product=product, customers={"kdv-a": {}})
    store = StateStore(f"sqlite:///{folder / 'state.db'}")
    store.migrate()
    try:
        for i, (_, held) in enumerate(rows, 1):
            if held:
                key = record_key_hash(PEPPER, "kdv-a", kidsapp.PRODUCT, "child", (i,))
                place(store, customer="kdv-a", product=kidsapp.PRODUCT, table="child", key_hash=key)
        [report], seen = run(cfg, any_db_url, store)
        [planned], _ = run(cfg, any_db_url, store, dry_run=True)
    finally:
        store.close()
    assert not report.error, report.error
    [first, *_] = seen.of(RuleEvaluated)
    [last] = seen.of(RuleEvaluated)[-1:]
    [counted] = planned.rules
    assert (last.eligible, last.lag_seconds) == (counted.eligible, counted.lag_seconds)
    changed = sum(e.rows.get("child", 0) for e in seen.of(BatchApplied))
    held_expired = first.held
    assert counted.eligible == held_expired  # only held rows are left
    assert changed == first.eligible - held_expired
