"""Reconciliation: the trail always equals the data, even after a crash.

A batch's intent is written inside its product transaction, before COMMIT (worker/batches.py).
If the worker then dies — killed after COMMIT, or the state database gone before the
`batch.applied` record — the intent stays without an outcome, and the run stays open. Every
start (the daemon's, `run --once`'s, and each run of a pair) settles what its pair left:

- an open batch is looked up in the product database (worker/settlebatch.py): keys gone
  (or, for anonymise, masked) count as applied by that intent, keys still there as not
  applied. The settlement is a `batch.settled` audit event under the intent's run;
- a run left without an outcome is closed as `crashed`, with the rows its applied and settled
  batches changed.

Runs in progress are left alone: those of this process (`active`), and those whose owner
(`runs.owner`, worker/owner.py) is still alive — a process on this host that still exists, or a
run on another host with an audit record in the last 30 minutes, unless the caller took over
that owner's expired lease of the pair (worker/leases.py). A second `run --once` beside the
daemon therefore never closes the daemon's live run.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy import Connection

from connectors.base import Connector
from worker.config import Catalogue, Customer, ProductMapping
from worker.errors import StateError
from worker.events import EventBus, Outcome, RunFinished, RunRecorded
from worker.owner import abandoned
from worker.settlebatch import BatchSettlement, OpenBatch
from worker.state import StateStore
from worker.state.models import audit_events, open_batches, runs
from worker.state.runlog import RunClosed
from worker.targets import masks_of_intent
from worker.trailrows import RunBusy

log = structlog.get_logger("worker.reconcile")
Clock = Callable[[], dt.datetime]

# Built once: every run of a pair asks (bound parameters `customer` and `product`).
ANYTHING_OPEN = sa.select(
    sa.or_(
        sa.exists().where(
            open_batches.c.customer == sa.bindparam("customer"),
            open_batches.c.product == sa.bindparam("product"),
        ),
        sa.exists().where(
            runs.c.customer == sa.bindparam("customer"),
            runs.c.product == sa.bindparam("product"),
            runs.c.outcome.is_(None),
        ),
    )
)


def _utc(value: dt.datetime) -> dt.datetime:
    """A stored time as aware UTC (SQLite and MariaDB return it naive)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Settled:
    batches: int
    rows: int
    runs_closed: int


def open_work(store: StateStore, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The pairs among `pairs` with an open batch or an open run (one cheap read)."""
    wanted = set(pairs)

    def read(conn: Connection) -> set[tuple[str, str]]:
        found = {
            (c, p)
            for c, p in conn.execute(
                sa.select(open_batches.c.customer, open_batches.c.product).distinct()
            )
        }
        found |= {
            (c, p)
            for c, p in conn.execute(
                sa.select(runs.c.customer, runs.c.product)
                .where(runs.c.outcome.is_(None))
                .distinct()
            )
        }
        return found & wanted

    return store.read("looking for unsettled work", read)


class Reconciler:
    """Settles one pair's open batches and closes its open runs (see the module docstring)."""

    def __init__(
        self,
        store: StateStore,
        bus: EventBus,
        catalogue: Catalogue,
        pepper: bytes,
        clock: Clock,
    ) -> None:
        self.store = store
        self.bus = bus
        self._batches = BatchSettlement(bus, catalogue, pepper, clock)
        self.clock = clock

    def settle(
        self,
        connector: Connector,
        customer: Customer,
        mapping: ProductMapping,
        *,
        settled_by: str,
        active: Iterable[str] = (),
        gone: str | None = None,
        before: Callable[[], object] | None = None,
        anything_open: bool | None = None,
    ) -> Settled:
        """Settle what earlier runs of this pair left open; runs in `active` are skipped.

        `gone` is the `host|pid` of a process whose expired lease of this pair the caller
        took over (worker/leases.py): its open runs are abandoned whatever host it was on.
        `before()` is called when there is something to settle, before the product database
        is read (the run's own schema check: worker/drift.py `SchemaCheck.confirm`).
        `anything_open`: what the caller read of it a moment ago (worker/pairstate.py);
        None: read it here.
        """
        if anything_open is None:
            anything_open = self._anything_open(customer.customer, mapping.product)
        if not anything_open:
            return Settled(0, 0, 0)  # the usual case: one read instead of three
        if before is not None:
            before()
        live = self._live_runs(customer.customer, mapping.product, gone)
        busy = set(active) | {settled_by} | live
        found = self._open_batches(customer.customer, mapping.product)
        batches = [b for b in found if b.run_id not in busy]
        rows = 0
        settled = 0
        for batch in batches:
            counted = self._batches.settle(connector, customer, mapping, batch, settled_by)
            if counted is not None:  # None: its holder recorded its outcome meanwhile
                rows += counted
                settled += 1
        closed = 0
        for run_id in self._open_runs(customer.customer, mapping.product, busy):
            closed += self._close_run(run_id, customer.customer, mapping.product, settled_by)
        if settled or closed:
            log.warning(
                "reconcile.settled",
                customer=customer.customer,
                product=mapping.product,
                batches=settled,
                rows=rows,
                runs_closed=closed,
                settled_by=settled_by,
            )
        return Settled(settled, rows, closed)

    # --- reading the trail -----------------------------------------------------------

    def _anything_open(self, customer: str, product: str) -> bool:
        """Whether the pair has an open batch or a run without an outcome (one statement).
        When it has neither, settling has nothing to do: the three reads below, each its
        own snapshot like this one, would find nothing either, unless work appeared after
        this read, which they too could have missed by reading a moment earlier."""
        pair = {"customer": customer, "product": product}
        return self.store.read(
            "looking for unsettled work", lambda c: bool(c.execute(ANYTHING_OPEN, pair).scalar())
        )

    def _open_batches(self, customer: str, product: str) -> list[OpenBatch]:
        query = (
            sa.select(open_batches.c.intent_seq, audit_events)
            .join(audit_events, audit_events.c.seq == open_batches.c.intent_seq)
            .where(open_batches.c.customer == customer, open_batches.c.product == product)
            .order_by(open_batches.c.intent_seq)
        )

        def read(conn: Connection) -> list[OpenBatch]:
            found = []
            for row in conn.execute(query):
                payload = json.loads(row.payload)
                found.append(
                    OpenBatch(
                        run_id=row.run_id,
                        customer=row.customer,
                        product=row.product,
                        rule=row.rule,
                        action=row.action,
                        table=payload["table"],
                        batch=int(payload["batch"]),
                        key_hashes=tuple(payload["key_hashes"]),
                        rows={t: int(n) for t, n in payload.get("rows", {}).items()},
                        masks=masks_of_intent(payload.get("masks", {})),
                    )
                )
            return found

        return self.store.read("reading open batches", read)

    def _live_runs(self, customer: str, product: str, gone: str | None = None) -> set[str]:
        """Open runs of the pair whose owner is still alive (worker/owner.py) and is not
        `gone` (a lease holder whose lease expired)."""
        last = (
            sa.select(sa.func.max(audit_events.c.at))
            .where(audit_events.c.run_id == runs.c.run_id)
            .scalar_subquery()
        )
        query = sa.select(runs.c.run_id, runs.c.owner, runs.c.started_at, last).where(
            runs.c.customer == customer, runs.c.product == product, runs.c.outcome.is_(None)
        )
        found = self.store.read("reading open runs", lambda c: list(c.execute(query)))
        now = self.clock()
        live = set()
        for run_id, owner, started_at, last_at in found:
            activity = max((_utc(t) for t in (started_at, last_at) if t is not None), default=None)
            if (gone is None or owner != gone) and not abandoned(owner, activity, now):
                live.add(str(run_id))
        return live

    def _open_runs(self, customer: str, product: str, busy: set[str]) -> list[str]:
        query = sa.select(runs.c.run_id).where(
            runs.c.customer == customer, runs.c.product == product, runs.c.outcome.is_(None)
        )
        found = self.store.read("reading open runs", lambda c: list(c.execute(query).scalars()))
        return [r for r in found if r not in busy]

    # --- settling --------------------------------------------------------------------

    def _close_run(self, run_id: str, customer: str, product: str, settled_by: str) -> bool:
        """Record the end of a run a crash left open (True), once: another process that
        closed it a moment earlier wins, and a run that began a batch since its batches were
        settled is alive (worker/trailrows.py `RunBusy`): it ends itself."""
        processed = self._processed(run_id)
        why = f"RunCrashed: the run ended without finishing; closed by run {settled_by}"
        at = self.clock()
        try:
            self.bus.publish(
                RunFinished(
                    run_id, customer, product, Outcome.CRASHED, at, 0.0, processed, error=why
                )
            )
        except StateError as exc:
            if isinstance(exc.__cause__, RunBusy):
                log.info("reconcile.run_in_progress", run_id=run_id, settled_by=settled_by)
                return False
            if not isinstance(exc.__cause__, RunClosed):
                raise
            # The closer that won counts it; counting it here too would count it twice.
            log.info("reconcile.closed_already", run_id=run_id, settled_by=settled_by)
            return False
        self.bus.publish(
            RunRecorded(run_id, customer, product, Outcome.CRASHED, at, 0.0, stored=True)
        )
        return True

    def _processed(self, run_id: str) -> dict[tuple[str, str], dict[str, int]]:
        """Rows per (rule, action) and table that a run's applied and settled batches
        changed, from its audit records."""
        query = sa.select(
            audit_events.c.kind, audit_events.c.rule, audit_events.c.action, audit_events.c.payload
        ).where(
            audit_events.c.run_id == run_id,
            audit_events.c.kind.in_(("batch.applied", "batch.settled")),
        )

        def read(conn: Connection) -> dict[tuple[str, str], dict[str, int]]:
            totals: dict[tuple[str, str], dict[str, int]] = {}
            for _kind, rule, action, payload in conn.execute(query):
                rows: dict[str, Any] = json.loads(payload).get("rows", {})
                mine = totals.setdefault((rule, action), {})
                for table, count in rows.items():
                    mine[table] = mine.get(table, 0) + int(count)
            return totals

        return self.store.read(f"reading what run {run_id} did", read)
