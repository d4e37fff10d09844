"""One read at a run's start: whether its pair has anything in the state database to read.

A run reads three things of its customer × product before it changes a row: the work an
earlier run left open (worker/reconcile.py, settled first), the legal holds in force
(worker/holds.py) and the approvals asked for or given (worker/approvals.py). Most pairs
have none of them, most of the time, and each read was a statement of its own. So a run
first asks for all three at once whether there is anything at all (`read_pair_state`, one
statement of three EXISTS, each over exactly the rows its full read selects:
`reconcile.ANYTHING_OPEN`, `holds.ACTIVE_FOR_PAIR`, `approvals.OPEN_FOR_PAIR`), and reads
in full only what exists.

Each answer is read when the run starts, as the full reads were (each its own snapshot, a
few milliseconds apart): a hold placed or an approval given after it binds the next run, as
one placed a moment after the full read did. Within the run, a batch's guard still looks
each key up in the holds of that moment (worker/holds.py), so a record hold placed while
the run changes rows is obeyed. A run that settled open work first (which reads the product
database, for as long as that takes) reads the holds and approvals after settling in full,
not by the answer read before it: a hold placed while it settled binds its gate.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from worker.approvals import OPEN_FOR_PAIR
from worker.holds import ACTIVE_FOR_PAIR
from worker.reconcile import ANYTHING_OPEN
from worker.state import StateStore


@dataclass(frozen=True)
class PairState:
    """What a pair has in the state database now: open work (a batch without an outcome,
    a run without an end), a hold in force, an open approval request."""

    open_work: bool
    holds: bool
    approvals: bool


_PAIR_STATE = sa.select(
    ANYTHING_OPEN.scalar_subquery().label("open_work"),
    ACTIVE_FOR_PAIR.exists().label("holds"),
    OPEN_FOR_PAIR.order_by(None).exists().label("approvals"),
)


def read_pair_state(store: StateStore | None, customer: str, product: str) -> PairState | None:
    """The pair's `PairState`, in one statement; None without a state database (nothing
    known: each read decides for itself). Raises StateError as any state read does (after
    its retries)."""
    if store is None:
        return None
    pair = {"customer": customer, "product": product}

    def read(conn: sa.Connection) -> PairState:
        row = conn.execute(_PAIR_STATE, pair).one()
        return PairState(bool(row.open_work), bool(row.holds), bool(row.approvals))

    return store.read(f"reading the state of {customer} × {product}", read)
