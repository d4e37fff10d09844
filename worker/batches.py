"""The batches of one rule: select, announce, apply, record — with holds and lost commits.

    select a page of expired keys (outside any transaction)
      → leave out records a hold covers (holds read again for every batch)
      → apply in one product transaction:
            lock the rows → guard: a hold placed meanwhile keeps its rows out
            → change → `batch.intent` written (keys, rows per table) → COMMIT
      → `batch.applied` with the rows per table

The intent is written inside the product transaction, before COMMIT: nothing is committed
without it, and if the worker dies after COMMIT it says exactly what to settle
(worker/reconcile.py). When COMMIT's reply is lost, the batch's keys are looked up before
anything else: gone (or masked) means it committed, and the trail gets the transaction's own
counts; still there means it rolled back, and the batch is done again — never blindly
retried, which would find the rows gone and count nothing.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence, Set
from typing import TYPE_CHECKING, Any

from connectors.base import (
    AmbiguousCommit,
    Applied,
    Change,
    Connector,
    ConnectorError,
    Key,
    RowsRefused,
    Target,
)
from worker.config import Customer, ProductMapping
from worker.errors import RetentionError
from worker.events import (
    BatchApplied,
    BatchFailed,
    BatchIntent,
    BatchSettled,
    RuleGated,
)
from worker.gate import held_by
from worker.holds import ActiveHolds
from worker.isolation import LostCommits, split
from worker.keys import KeyHasher, row_key
from worker.periods import add_period
from worker.policy import EffectiveRule
from worker.runreport import RulePlan
from worker.targets import intent_masks

if TYPE_CHECKING:
    from worker.run import Runner

# A batch whose COMMIT reply is lost and that turns out rolled back is done again; this many
# times in a row means something is wrong with the connection, not bad luck.
MAX_LOST_COMMITS = 3


class RunInterrupted(RetentionError):
    """The run was asked to stop."""


def run_batches(
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
    """Work through a rule's eligible rows in batches until none is left (or a stop)."""
    if not target.table.key:
        _keyless_batches(runner, connector, customer, mapping, rule, target, plan, names, hasher)
        return
    change = Change(str(rule.action))
    size = min(
        runner.batch_size or mapping.batch_size, connector.batch_limit(len(target.table.key))
    )
    table = target.table.name
    common = {"rule": rule.id, "action": str(change), "table": table}
    keeper = runner.gatekeeper
    after: Key | None = None
    numbers = itertools.count(1)
    lost = 0

    def one(keys: Sequence[Key], number: int | None, held: Set[str]) -> bool:
        """Apply `keys` as batch `number` (None: the next number), as `_one_batch` does."""
        return _one_batch(
            runner,
            connector,
            customer,
            mapping,
            rule,
            target,
            plan,
            names,
            hasher,
            change,
            keys,
            next(numbers) if number is None else number,
            held,
        )

    while True:
        runner.check_stop()
        page = runner._retry(connector.select_expired, target, after, size)
        if not page:
            return
        holds = keeper.active_holds(customer.customer, mapping.product)
        if _stopped_by_hold(runner, holds, rule, plan, common, names):
            return
        # Hashed here, before the batch's transaction: the guard and the intent inside it
        # find the hashes remembered (worker/keys.py) and hold no lock while hashing.
        hashes = hasher.remember(page)
        held = holds.held(table, hashes)
        keys = [k for k, h in zip(page, hashes, strict=True) if h not in held] if held else page
        last = len(page) < size  # the selection had no more rows: no page after this one
        if not keys:
            if last:
                return
            after = page[-1]
            continue
        batch = next(numbers)
        try:
            done = one(keys, batch, held)
        except RowsRefused as refused:
            split(runner.bus, plan, {**common, **names}, hasher, (keys, batch, held), refused, one)
            done = True
        if done:
            if last:
                return
            after, lost = page[-1], 0
        else:
            lost += 1
            if lost > MAX_LOST_COMMITS:
                raise LostCommits(
                    f"the reply to COMMIT was lost {lost} times in a row for {table}; nothing "
                    "of those batches was committed; check the network to the database"
                )
        if mapping.batch_pause:
            runner.stop.wait(mapping.batch_pause)


def _one_batch(
    runner: Runner,
    connector: Connector,
    customer: Customer,
    mapping: ProductMapping,
    rule: EffectiveRule,
    target: Target,
    plan: RulePlan,
    names: Mapping[str, str],
    hasher: KeyHasher,
    change: Change,
    keys: Sequence[Key],
    batch: int,
    held_before: Set[str],
) -> bool:
    """Apply one batch and record it; False when a lost COMMIT reply turned out rolled back
    (the caller does the same page again)."""
    table = target.table.name
    common: dict[str, Any] = {"rule": rule.id, "action": str(change), "table": table}
    keeper = runner.gatekeeper

    def guard(locked: Sequence[Key]) -> set[Key]:
        fresh = keeper.active_holds(customer.customer, mapping.product)
        if held_by(fresh, rule):
            return set(locked)
        return {k for k in locked if fresh.held(table, (hasher(k),))}

    prepared: list[bool] = []

    def prepare(applied: Applied) -> None:
        prepared.append(True)
        runner.bus.publish(
            BatchIntent(
                batch=batch,
                key_hashes=tuple(hasher(k) for k in applied.changed_keys),
                cutoff=plan.cutoff,
                rows=dict(applied),
                masks=intent_masks(target.masks) if change is Change.ANONYMISE else {},
                **common,
                **names,
            )
        )

    started = time.monotonic()
    apply: Callable[[], Applied] = lambda: connector.apply(  # noqa: E731
        target, change, keys, guard=guard, prepare=prepare
    )
    try:
        applied = runner._retry(apply)
    except AmbiguousCommit as lost:
        found = _settle_lost_commit(runner, connector, target, change, lost.applied)
        if found is None:
            runner.bus.publish(
                BatchFailed(
                    batch=batch,
                    error="LostCommit: the reply to COMMIT was lost and nothing was committed",
                    duration_seconds=time.monotonic() - started,
                    **common,
                    **names,
                )
            )
            return False
        if (
            found.changed_keys != lost.applied.changed_keys
        ):  # only some keys gone: settle what is known
            missing = [k for k in lost.applied.changed_keys if k not in set(found.changed_keys)]
            runner.bus.publish(
                BatchSettled(
                    batch=batch,
                    rows=dict(found),
                    applied=len(found.changed_keys),
                    not_applied=tuple(hasher(k) for k in missing),
                    settled_by=names["run_id"],
                    partial=True,
                    **common,
                    **names,
                )
            )
            _count(plan, found)
            return True
        applied = found
    except RowsRefused as exc:
        if prepared:  # refused at COMMIT (a deferred constraint): close the intent
            runner.bus.publish(
                BatchFailed(
                    batch=batch,
                    error=str(exc),
                    duration_seconds=time.monotonic() - started,
                    **common,
                    **names,
                )
            )
        raise  # the caller splits the batch (worker/isolation.py)
    except ConnectorError as exc:
        runner.bus.publish(
            BatchFailed(
                batch=batch,
                error=str(exc),
                duration_seconds=time.monotonic() - started,
                **common,
                **names,
            )
        )
        raise
    all_held = {*held_before, *(hasher(k) for k in applied.held_keys)}
    if not applied.changed_keys and not all_held:
        return True  # the rows stopped being eligible before the batch: nothing to record
    backups = runner.catalogue.products[mapping.product].backup_retention
    runner.bus.publish(
        BatchApplied(
            batch=batch,
            rows=dict(applied),
            categories=tuple(sorted(rule.categories)),
            gone_from_backups_by=add_period(plan.today, backups),
            duration_seconds=time.monotonic() - started,
            held=tuple(sorted(all_held)),
            **common,
            **names,
        )
    )
    _count(plan, applied)
    return True


def _keyless_batches(
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
    size = min(runner.batch_size or mapping.batch_size, 10_000)
    common: dict[str, Any] = {"rule": rule.id, "action": "delete", "table": target.table.name}
    batch = 0
    while True:
        runner.check_stop()
        holds = runner.gatekeeper.active_holds(customer.customer, mapping.product)
        if _stopped_by_hold(runner, holds, rule, plan, common, names):
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
            applied = runner._retry(lambda: connector.delete_expired(target, size, prepare=prepare))
        except AmbiguousCommit as lost:
            found = _settle_lost_commit(runner, connector, target, Change.DELETE, lost.applied)
            if found is None:
                runner.bus.publish(
                    BatchFailed(
                        batch=number,
                        error="LostCommit: the reply to COMMIT was lost and nothing was committed",
                        duration_seconds=time.monotonic() - started,
                        **common,
                        **names,
                    )
                )
                continue
            applied = found
        except ConnectorError as exc:
            runner.bus.publish(
                BatchFailed(
                    batch=number,
                    error=str(exc),
                    duration_seconds=time.monotonic() - started,
                    **common,
                    **names,
                )
            )
            raise
        if not applied.changed_keys:
            return
        backups = runner.catalogue.products[mapping.product].backup_retention
        runner.bus.publish(
            BatchApplied(
                batch=number,
                rows=dict(applied),
                categories=tuple(sorted(rule.categories)),
                gone_from_backups_by=add_period(plan.today, backups),
                duration_seconds=time.monotonic() - started,
                held=(),
                **common,
                **names,
            )
        )
        _count(plan, applied)
        if mapping.batch_pause:
            runner.stop.wait(mapping.batch_pause)


def _settle_lost_commit(
    runner: Runner, connector: Connector, target: Target, change: Change, applied: Applied
) -> Applied | None:
    """What a batch whose COMMIT reply was lost really did: the transaction's own counts when
    every key is gone (or masked), None when none is (it rolled back), and for a mix the keys
    gone, counted in the subject table only."""
    left = runner._retry(connector.remaining, target, change, applied.changed_keys)
    gone = [k for k in applied.changed_keys if k not in left]
    if not gone:
        return None
    if len(gone) == len(applied.changed_keys):
        return applied
    return Applied({target.table.name: len(gone)}, gone, applied.held_keys)


def _count(plan: RulePlan, rows: Mapping[str, int]) -> None:
    for name, count in rows.items():
        plan.changed[name] = plan.changed.get(name, 0) + count


def _stopped_by_hold(
    runner: Runner,
    holds: ActiveHolds,
    rule: EffectiveRule,
    plan: RulePlan,
    common: Mapping[str, Any],
    names: Mapping[str, str],
) -> bool:
    """True when a hold placed on the whole rule (or its pair) since the run began stops it
    before the next batch: the plan says so and a `rule.gated` event is published."""
    stopped = held_by(holds, rule)
    if not stopped:
        return False
    plan.gate, plan.why, plan.reasons = "held", "hold", (f"held by {stopped}",)
    runner.bus.publish(
        RuleGated(
            gate="held",
            why="hold",
            eligible=plan.eligible,
            reasons=plan.reasons,
            hold_ids=stopped,
            since=None,
            **common,
            **names,
        )
    )
    return True
