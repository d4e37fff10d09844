"""Settling one open batch (worker/reconcile.py): which of the keys its intent names are still
in the product database, recorded as a `batch.settled` audit event under the intent's run.

The intent holds only keyed hashes of the keys, so the tenant's keys of that table are read
and hashed to find which are still there. Keys gone (or, for anonymise, masked) count as
applied by that intent — with the intent's own rows per table when all are gone — keys still
there as not applied. The keys found there are read again under the lock a batch takes
(`Connector.remaining`): a holder still alive, starved past its lease after its intent was
recorded and before its product COMMIT, is waited for, and what its COMMIT (or rollback)
left is what counts. A holder in flight for longer than the lock timeout fails the
settlement (`LockTimeout`, nothing recorded; the next run settles). A batch whose holder
recorded its own outcome meanwhile is not settled (worker/trailrows.py `BatchClosed`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from connectors.base import Change, ColumnMask, Connector, Key, LockTimeout, Target
from worker.config import Catalogue, Customer, ProductMapping
from worker.errors import StateError
from worker.events import BatchSettled, EventBus
from worker.keys import KeyHasher, row_key
from worker.policy import effective_rules, rule_cutoff
from worker.targets import target_for
from worker.trailrows import BatchClosed

log = structlog.get_logger("worker.reconcile")
SCAN_PAGE = 5_000
"""Keys read per page of the tenant's table while looking for an intent's keys (rows)."""


@dataclass(frozen=True)
class OpenBatch:
    """An intent without an outcome, as its audit record says it."""

    run_id: str
    customer: str
    product: str
    rule: str
    action: str
    table: str
    batch: int
    key_hashes: tuple[str, ...]
    rows: dict[str, int]
    # The masks the batch wrote (anonymise; empty in intents written before they were kept).
    masks: tuple[ColumnMask, ...] = ()


class BatchSettlement:
    """Settles one open batch (see the module docstring)."""

    def __init__(
        self,
        bus: EventBus,
        catalogue: Catalogue,
        pepper: bytes,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.bus = bus
        self.catalogue = catalogue
        self.pepper = pepper
        self.clock = clock

    def settle(
        self,
        connector: Connector,
        customer: Customer,
        mapping: ProductMapping,
        batch: OpenBatch,
        settled_by: str,
    ) -> int | None:
        target = self._target(customer, mapping, batch)
        if batch.masks:  # what this batch wrote, whatever the rule says now
            target = dataclasses.replace(target, masks=batch.masks)
        hasher = KeyHasher(self.pepper, customer.customer, mapping.product, batch.table)
        if not target.table.key:
            return self._settle_rows(connector, target, hasher, batch, settled_by)
        wanted = set(batch.key_hashes)
        present: dict[str, Key] = {}
        after: Key | None = None
        while len(present) < len(wanted):
            page = connector.scan_keys(target, after, SCAN_PAGE)
            if not page:
                break
            for key in page:
                digest = hasher(key)
                if digest in wanted:
                    present[digest] = key
            after = page[-1]
        if present:  # read again once a holder's transaction still changing them ended
            left = self._still_there(connector, target, batch, list(present.values()))
            present = {h: k for h, k in present.items() if k in left}
        applied = len(wanted) - len(present)
        if not present:
            rows = dict(batch.rows) or {batch.table: applied}
        else:
            rows = {batch.table: applied} if applied else {}
        return self._publish(
            batch, rows, applied, tuple(sorted(present)), settled_by, partial=bool(present)
        )

    def _settle_rows(
        self,
        connector: Connector,
        target: Target,
        hasher: KeyHasher,
        batch: OpenBatch,
        settled_by: str,
    ) -> int | None:
        """A table without a key: rows are named by their values, so identical rows count
        as many as the intent lists; a row still there counts as not applied (for identical
        rows this counts on the safe side: fewer applied, never more). When any is there, the
        table is counted again once a holder's transaction still changing them ended."""
        wanted = Counter(batch.key_hashes)
        present = _rows_named(connector, target, hasher, wanted)
        if present and self._still_there(connector, target, batch, list(present)):
            present = _rows_named(connector, target, hasher, wanted)
        elif present:
            present = Counter()
        counted = Counter({hasher(row_key(row)): n for row, n in present.items()})
        missing = {h: min(n, counted[h]) for h, n in wanted.items() if counted[h]}
        applied = sum(wanted.values()) - sum(missing.values())
        rows = dict(batch.rows) if not missing else ({batch.table: applied} if applied else {})
        not_applied = tuple(sorted(h for h, n in missing.items() for _ in range(n)))
        return self._publish(batch, rows, applied, not_applied, settled_by, partial=bool(missing))

    def _still_there(
        self, connector: Connector, target: Target, batch: OpenBatch, found: list[Key]
    ) -> set[Key]:
        """Which of the keys (rows) `found` present are still there (for anonymise: not
        masked) once a transaction still changing them ended: `Connector.remaining` waits
        for it. The batch's holder may be alive, starved past its lease after its intent was
        recorded and before its COMMIT; its rows read before that COMMIT would count as not
        applied. A holder in flight for longer than the lock timeout fails the settlement:
        nothing is recorded, and the pair's next run settles the batch."""
        try:
            return connector.remaining(target, Change(batch.action), found)
        except LockTimeout as exc:
            raise LockTimeout(
                f"batch {batch.batch} of run {batch.run_id} (rule {batch.rule}) is not settled: "
                f"its rows are locked, most likely by that run's own transaction not yet "
                f"committed; {exc}"
            ) from exc

    def _publish(
        self,
        batch: OpenBatch,
        rows: dict[str, int],
        applied: int,
        not_applied: tuple[str, ...],
        settled_by: str,
        *,
        partial: bool,
    ) -> int | None:
        """Record the settlement; the rows it counts, or None when the batch got its outcome
        meanwhile (its holder, starved past its lease but alive, recorded it after this run
        read the batch open: worker/trailrows.py `BatchClosed`). That outcome stands."""
        try:
            self.bus.publish(
                BatchSettled(
                    run_id=batch.run_id,
                    customer=batch.customer,
                    product=batch.product,
                    rule=batch.rule,
                    action=batch.action,
                    table=batch.table,
                    batch=batch.batch,
                    rows=rows,
                    applied=applied,
                    not_applied=not_applied,
                    settled_by=settled_by,
                    partial=partial and applied > 0,
                )
            )
        except StateError as exc:
            if not isinstance(exc.__cause__, BatchClosed):
                raise
            log.info(
                "reconcile.batch_closed_already",
                run_id=batch.run_id,
                rule=batch.rule,
                batch=batch.batch,
                settled_by=settled_by,
            )
            return None
        return sum(rows.values())

    def _target(self, customer: Customer, mapping: ProductMapping, batch: OpenBatch) -> Target:
        """The batch's table with the tenant (and, for anonymise, the rule's masks)."""
        chosen = customer.products[mapping.product]
        for rule in effective_rules(self.catalogue, customer, mapping):
            if rule.id == batch.rule and rule.subject.table == batch.table:
                cutoff = rule_cutoff(rule, self.clock(), customer.timezone)
                return target_for(rule, mapping, chosen, cutoff)
        # The rule is gone from the configuration: any rule of that table gives its key.
        for rule in effective_rules(self.catalogue, customer, mapping):
            if rule.subject.table == batch.table:
                cutoff = rule_cutoff(rule, self.clock(), customer.timezone)
                found = target_for(rule, mapping, chosen, cutoff)
                return Target(
                    found.table, found.tenant, None, found.cutoff_date, found.cutoff_instant
                )
        raise LookupError(f"no rule of {mapping.product} acts on table {batch.table} any more")


def _rows_named(
    connector: Connector, target: Target, hasher: KeyHasher, wanted: Counter[str]
) -> Counter[Key]:
    """The tenant's rows of a table without a key whose keyed hash `wanted` holds, each with
    how many identical ones there are."""
    rows = connector.scan_keys(target, None, 0)
    return Counter(row for row in rows if hasher(row_key(row)) in wanted)
