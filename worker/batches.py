"""The batches of one rule: select, announce, apply, record — with holds and lost commits.

A delete batch is first tried set-based (`Connector.delete_next`, connectors/sqlfast.py): one
statement selects and deletes the next expired rows in the batch's transaction, the guard
reads the holds again before COMMIT (a hold on any of the rows rolls it back), the intent
names the returned keys. From the first batch the connector declines, the page path:

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

import time
from collections.abc import Callable, Mapping, Sequence, Set
from typing import TYPE_CHECKING, Any

from connectors.base import (
    AmbiguousCommit,
    Applied,
    Change,
    Connector,
    ConnectorError,
    Guard,
    Key,
    Prepare,
    RowsRefused,
    Target,
)
from worker.batchsize import BatchSizer
from worker.batchsteps import (
    LOST_COMMIT,
    count_changed,
    publish_applied,
    publish_failed,
    publish_outcome,
    settle_lost_commit,
    sizer_for,
    stopped_by_hold,
)
from worker.config import Customer, ProductMapping
from worker.errors import RetentionError
from worker.events import (
    BatchIntent,
    BatchSettled,
)
from worker.gate import held_by
from worker.isolation import LostCommits, split
from worker.keyless import keyless_batches
from worker.keys import KeyHasher
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
) -> bool:
    """Work through a rule's eligible rows in batches until none is left (or a stop).

    True when the rule's last selection, from the first key, came back empty (or short) and
    every row it ever returned was changed: no row held, refused or split off, so nothing of
    the backlog is left at that moment and the caller need not count it again. False
    otherwise (the caller counts).
    """
    if not target.table.key:
        keyless_batches(runner, connector, customer, mapping, rule, target, plan, names, hasher)
        return False
    change = Change(str(rule.action))
    table = target.table.name
    where = (connector.database_key(), table, str(change))
    sizer = sizer_for(runner, mapping, connector.batch_limit(len(target.table.key)), where)
    common = {"rule": rule.id, "action": str(change), "table": table}
    keeper = runner.gatekeeper
    after: Key | None = None
    numbers = [0]  # the last batch number taken
    lost = 0
    # A batch that left some of its rows (a hold its guard found inside the transaction, a
    # lost COMMIT whose keys were only partly gone) notes it here: the rule counts again.
    skipped: list[bool] = []

    def take() -> int:
        numbers[0] += 1
        return numbers[0]

    def batch_of(
        keys: Sequence[Key],
        number: int,
        held: Set[str],
        change_rows: Callable[[Guard, Prepare], Applied | None] | None = None,
    ) -> bool | None:
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
            number,
            held,
            change_rows,
            sizer,
            skipped,
        )

    def one(keys: Sequence[Key], number: int | None, held: Set[str]) -> bool:
        """Apply `keys` as batch `number` (None: the next number), as `_one_batch` does."""
        return bool(batch_of(keys, take() if number is None else number, held))

    def lost_one() -> None:
        nonlocal lost
        lost += 1
        if lost > MAX_LOST_COMMITS:
            raise LostCommits(
                f"the reply to COMMIT was lost {lost} times in a row for {table}; nothing "
                "of those batches was committed; check the network to the database"
            )

    # Set-based batches (connectors/sqlfast.py) while the connector can do them; the page
    # path below from the first one it declines (dependents, foreign keys, a hold on some
    # of the rows, rows the database refuses: the page path leaves those out or splits),
    # and after the first short one: the page path then confirms that no row is left (a
    # row whose key no statement can name, such as NULL, fails the rule there). Not after a
    # short batch from the first key that deleted every row it chose (`Applied.whole`,
    # PostgreSQL): its selection was every expired row at its snapshot. A row another
    # transaction changed while the batch waited for its lock is chosen but not deleted
    # (connectors/sqlfast.py `chosen_delete`): the page path confirms and takes it
    # (tests/integration/test_set_based_concurrent.py).
    fast = change is Change.DELETE
    clean = True  # no row of the selection was skipped: held, refused or split off
    deleted: list[Sequence[Key]] = []  # the keys each set-based batch deleted
    took_all: list[bool] = []  # and whether it took its whole selection (`Applied.whole`)
    announced: list[int] = []  # intents the set-based batch published
    # Where the next set-based batch starts: after the largest key deleted so far, so that
    # its scan in key order does not pass every row the earlier batches passed again (at
    # 10,000,000 rows without an index on tenant and date, a batch scanned 480,000 rows by
    # key, and more with every batch). The page path below confirms from the first key.
    resume: Key | None = None
    while fast:
        runner.check_stop()
        deleted.clear()
        announced.clear()
        took_all.clear()
        size = sizer.size

        def attempt(
            guard: Guard, prepare: Prepare, size: int = size, start: Key | None = resume
        ) -> Applied | None:
            def announce(applied: Applied) -> None:
                announced.append(1)
                prepare(applied)

            applied = connector.delete_next(target, start, size, guard=guard, prepare=announce)
            if applied is not None:
                deleted.append(applied.changed_keys)
                took_all.append(applied.whole)
            return applied

        number = numbers[0] + 1
        try:
            done = batch_of((), number, frozenset(), attempt)
        except RowsRefused:
            if announced:  # refused at COMMIT: its intent was closed as failed
                numbers[0] = number
            clean = False
            break
        if done is None:  # declined: nothing happened
            break
        numbers[0] = number
        if not done:
            lost_one()
            continue
        lost = 0
        if not deleted or len(deleted[-1]) < size:
            if resume is None and clean and not skipped and took_all and took_all[-1]:
                # From the first key, every row it chose deleted, fewer than asked for:
                # nothing of the rule's selection was left at its snapshot.
                return True
            break  # short: the page path below confirms that nothing is left
        resume = resume_after(deleted[-1], resume)
        if mapping.batch_pause:
            runner.stop.wait(mapping.batch_pause)

    while True:
        runner.check_stop()
        size = sizer.size
        page = runner._retry(connector.select_expired, target, after, size)
        # An empty (or short) selection proves nothing is left only from the first key: rows
        # behind `after` that expired meanwhile are not in it (the next run takes them).
        whole = after is None
        if not page:
            return clean and not skipped and whole
        holds = keeper.active_holds(customer.customer, mapping.product)
        if stopped_by_hold(runner, holds, rule, plan, common, names):
            return False
        # Hashed here, before the batch's transaction: the guard and the intent inside it
        # find the hashes remembered (worker/keys.py) and hold no lock while hashing.
        hashes = hasher.remember(page)
        held = holds.held(table, hashes)
        keys = [k for k, h in zip(page, hashes, strict=True) if h not in held] if held else page
        last = len(page) < size  # the selection had no more rows: no page after this one
        clean = clean and not held
        if not keys:
            if last:
                return False
            after = page[-1]
            continue
        batch = take()
        try:
            done = one(keys, batch, held)
        except RowsRefused as refused:
            split(runner.bus, plan, {**common, **names}, hasher, (keys, batch, held), refused, one)
            done, clean = True, False
        if done:
            if last:
                return clean and not skipped and whole
            after, lost = page[-1], 0
        else:
            lost_one()
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
    change_rows: Callable[[Guard, Prepare], Applied | None] | None = None,
    sizer: BatchSizer | None = None,
    skipped: list[bool] | None = None,
) -> bool | None:
    """Apply one batch and record it; False when a lost COMMIT reply turned out rolled back
    (the caller does the same page again). `change_rows` changes the rows instead of
    `Connector.apply` of `keys` (a set-based batch); None when it declined (nothing
    changed, nothing recorded). A batch that left eligible rows unchanged (held by its
    guard, or not applied after a lost COMMIT reply) appends to `skipped`."""
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

    def apply() -> Applied | None:
        if change_rows is not None:
            return change_rows(guard, prepare)
        return connector.apply(target, change, keys, guard=guard, prepare=prepare)

    try:
        maybe = runner._retry(apply)
        if maybe is None:
            return None
        applied = maybe
        if sizer is not None:  # the transaction's time (its intent included), not the trail's
            sizer.observe(len(applied.changed_keys), time.monotonic() - started)
    except AmbiguousCommit as lost:
        found = settle_lost_commit(runner, connector, target, change, lost.applied)
        if found is None:
            publish_failed(runner, plan, batch, LOST_COMMIT, started, {**common, **names})
            return False
        if (
            found.changed_keys != lost.applied.changed_keys
        ):  # only some keys gone: settle what is known
            missing = [k for k in lost.applied.changed_keys if k not in set(found.changed_keys)]
            if skipped is not None:
                skipped.append(True)
            publish_outcome(
                runner,
                plan,
                BatchSettled(
                    batch=batch,
                    rows=dict(found),
                    applied=len(found.changed_keys),
                    not_applied=tuple(hasher(k) for k in missing),
                    settled_by=names["run_id"],
                    partial=True,
                    **common,
                    **names,
                ),
            )
            count_changed(plan, found)
            return True
        applied = found
    except RowsRefused as exc:
        if prepared:  # refused at COMMIT (a deferred constraint): close the intent
            publish_failed(runner, plan, batch, str(exc), started, {**common, **names})
        raise  # the caller splits the batch (worker/isolation.py)
    except ConnectorError as exc:
        if sizer is not None:
            sizer.failed()
        publish_failed(runner, plan, batch, str(exc), started, {**common, **names})
        raise
    if applied.held_keys and skipped is not None:
        skipped.append(True)  # a hold placed meanwhile kept these rows: they are still owed
    all_held = {*held_before, *(hasher(k) for k in applied.held_keys)}
    if not applied.changed_keys and not all_held:
        return True  # the rows stopped being eligible before the batch: nothing to record
    labels = {**common, **names}
    held = tuple(sorted(all_held))
    publish_applied(runner, mapping, rule, plan, batch, applied, held, started, labels)
    count_changed(plan, applied)
    return True


def resume_after(keys: Sequence[Key], before: Key | None) -> Key | None:
    """The largest of `keys` (and `before`, an earlier result) when every key is one
    integer, else None.

    Integers compare in Python as in every database; texts do not (collations), and a
    resume point past a row the database orders earlier would leave that row to the page
    path's confirmation, which starts from the first key and finds it anyway, but late.
    """
    found = [k[0] for k in keys if len(k) == 1 and type(k[0]) is int]
    if len(found) != len(keys) or not found:
        return None
    return (max([*found, *(before or ())]),)
