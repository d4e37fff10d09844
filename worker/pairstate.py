"""One read at a run's start: whether its pair has anything in the state database to read.

A run reads three things of its customer × product before it changes a row: the work an
earlier run left open (worker/reconcile.py, settled first), the legal holds in force
(worker/holds.py) and the approvals asked for or given (worker/approvals.py). Most pairs
have none of them, most of the time, and each read was a statement of its own. So a run
first asks for all three at once whether there is anything at all (`read_pair_state`, one
statement of three EXISTS, each over exactly the rows its full read selects:
`reconcile.ANYTHING_OPEN`, `holds.ACTIVE_FOR_PAIR`, `approvals.OPEN_FOR_PAIR`), and reads
in full only what exists.

On a PostgreSQL state database the statement that takes the run's lease reads the three
flags as well (`PAIR_STATE_COLUMNS`), so a run that takes its lease sends no read of its
own; a lease taken over from a process that is gone, a take retried after a failure
(within the take's one retry budget), and SQLite, read it apart.

Each answer is read when the run starts, as the full reads were (each its own snapshot, a
few milliseconds apart): a hold placed or an approval given after it binds the next run, as
one placed a moment after the full read did. Within the run, a batch's guard still looks
each key up in the holds of that moment (worker/holds.py), so a record hold placed while
the run changes rows is obeyed. A run that settled open work first (which reads the product
database, for as long as that takes) reads the holds and approvals after settling in full,
not by the answer read before it: a hold placed while it settled binds its gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


PAIR_STATE_COLUMNS: tuple[sa.ColumnElement[Any], ...] = (
    ANYTHING_OPEN.scalar_subquery().label("open_work"),
    ACTIVE_FOR_PAIR.exists().label("holds"),
    OPEN_FOR_PAIR.order_by(None).exists().label("approvals"),
)
"""The three flags of `PairState`, in its order, as columns (parameters `customer` and
`product`): read by `read_pair_state`, or by the statement that takes the run's lease
(worker/leases.py `Leases.take`'s `also`; PostgreSQL), which saves a round trip."""

_PAIR_STATE = sa.select(*PAIR_STATE_COLUMNS)


def pair_state_of(values: Sequence[Any]) -> PairState:
    """The `PairState` of the three values `PAIR_STATE_COLUMNS` read, in their order."""
    open_work, held, asked = values
    return PairState(bool(open_work), bool(held), bool(asked))


def read_pair_state(store: StateStore | None, customer: str, product: str) -> PairState | None:
    """The pair's `PairState`, in one statement; None without a state database (nothing
    known: each read decides for itself). Raises StateError as any state read does (after
    its retries)."""
    if store is None:
        return None
    pair = {"customer": customer, "product": product}

    def read(conn: sa.Connection) -> PairState:
        return pair_state_of(tuple(conn.execute(_PAIR_STATE, pair).one()))

    return store.read(f"reading the state of {customer} × {product}", read)
