"""The batches of a table without a key: each deletes up to a batch of expired rows, chosen
and deleted by one statement, and names every row in the trail by the keyed hash of all its
values (worker/keys.py `row_key`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from connectors.base import AmbiguousCommit, Applied, Change, Connector, ConnectorError, Target
from worker.batchsteps import (
    LOST_COMMIT,
    count_changed,
    publish_applied,
    publish_failed,
    settle_lost_commit,
    sizer_for,
    stopped_by_hold,
)
from worker.config import Customer, ProductMapping
from worker.events import BatchIntent
from worker.keys import KeyHasher, row_key
from worker.policy import EffectiveRule
from worker.runreport import RulePlan

if TYPE_CHECKING:
    from worker.run import Runner


def keyless_batches(
    runner: Runner,
    connector: Connector,
    customer: Customer,
    mapping: ProductMapping,
    rule: EffectiveRule,
    target: Target,
    plan: RulePlan,
    names: Mapping[str, str],
    hasher: KeyHasher,
) -> None:
    """A table without a key: each batch deletes up to a batch of expired rows in one
    transaction; the trail names each row by the keyed hash of all its values."""
    sizer = sizer_for(runner, mapping, 10_000)
    common: dict[str, Any] = {"rule": rule.id, "action": "delete", "table": target.table.name}
    batch = 0
    while True:
        runner.check_stop()
        holds = runner.gatekeeper.active_holds(customer.customer, mapping.product)
        if stopped_by_hold(runner, holds, rule, plan, common, names):
            return
        batch += 1
        number = batch

        def prepare(applied: Applied, number: int = number) -> None:
            runner.bus.publish(
                BatchIntent(
                    batch=number,
                    key_hashes=tuple(hasher(row_key(r)) for r in applied.changed_keys),
                    cutoff=plan.cutoff,
                    rows=dict(applied),
                    masks={},  # a keyless table is only deleted from
                    **common,
                    **names,
                )
            )

        started = time.monotonic()
        try:
            size = sizer.size
            applied = runner._retry(
                lambda size=size: connector.delete_expired(target, size, prepare=prepare)
            )
            sizer.observe(len(applied.changed_keys), time.monotonic() - started)
        except AmbiguousCommit as lost:
            found = settle_lost_commit(runner, connector, target, Change.DELETE, lost.applied)
            if found is None:
                publish_failed(runner, plan, number, LOST_COMMIT, started, {**common, **names})
                continue
            applied = found
        except ConnectorError as exc:
            publish_failed(runner, plan, number, str(exc), started, {**common, **names})
            raise
        if not applied.changed_keys:
            return
        labels = {**common, **names}
        publish_applied(runner, mapping, rule, plan, number, applied, (), started, labels)
        count_changed(plan, applied)
        if mapping.batch_pause:
            runner.stop.wait(mapping.batch_pause)
