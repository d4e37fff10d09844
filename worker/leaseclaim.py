"""The rare path of a lease's take (worker/leases.py): the take's one statement returned no
row, so the tick's row exists and was not taken, or another tick of the pair kept it out.

`claim` reads the tick's row, locked, and says who has it (Busy) or takes it (a done row
taken `again`; an expired row, or one whose holder is gone, taken over; the take's own row,
written by an attempt whose COMMIT reply was lost, is the lease taken); without the tick's
row, `_others` reads every row of the pair to say why: a later tick's row (a scheduled take:
done), a live lease of another tick (held), or an expired lease of another tick (deleted,
then the take is tried again, once). These reads cost statements only when a take is refused
or races; a new tick's take that wins is the take's statement alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, update

from worker.leasesql import LeaseSQL
from worker.owner import alive, process_owner
from worker.state.models import leases

Why = Literal["held", "done"]


@dataclass(frozen=True)
class Busy:
    """Why this process does not run a pair now: another process holds its lease (`held`,
    for about `wait_seconds` more unless renewed; of this tick, or of another tick of the
    pair) or finished it (`done`: in this tick, or a later tick's run covers it). `holder` is
    that process's `host|pid`."""

    customer: str
    product: str
    tick: dt.datetime
    why: Why
    holder: str
    wait_seconds: float = 0.0


TOKENS: set[str] = set()
"""Tokens of the leases this process holds (sets of str are safe across threads in CPython
for add, discard and `in`)."""


def gone(holder: str, token: str) -> bool:
    """True when the lease's holder is certainly gone before its lease expires: a process
    on this host that no longer exists, or this host and pid without this process holding
    the token (a restarted container that got the same host name and pid). A holder on
    another host is judged by expiry alone (worker/owner.py reads pids the same way)."""
    host, _, pid_text = holder.partition("|")
    me_host, _, me_pid = process_owner().partition("|")
    if host != me_host or not pid_text.isdigit():
        return False
    if pid_text == me_pid:
        return token not in TOKENS
    return not alive(int(pid_text))


def utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


Taken = tuple[str | None, dt.datetime]
"""A row taken: the holder it was taken over from (None: it was done), and its expiry."""


def claim(
    conn: Connection,
    sql: LeaseSQL,
    clock: dict[str, dt.datetime],
    pair: dict[str, Any],
    holder: str,
    token: str,
    again: bool,
    retried: bool,
) -> Busy | Taken | None:
    """The take's INSERT left the tick's row, or was refused: read the tick's row, locked,
    and say who has it, or take it for `holder` and `token` (done and `again`; expired, or
    its holder gone: taken over). Without the tick's row, `_others` says why. None: take
    again (once: `retried` false)."""
    customer, product, tick = pair["lease_customer"], pair["lease_product"], pair["lease_tick"]
    seconds = sql.seconds
    row = conn.execute(sql.claim, pair).first()
    if row is None:  # no row, or another process is taking or renewing it this instant
        busy, has_row = _others(conn, sql, clock, pair, again)
        if busy is not None:
            return busy
        if has_row or retried:
            return Busy(customer, product, tick, "held", "another process", seconds)
        return None  # what kept the take out is gone: take again
    if row.token == token and row.done_at is None:
        # This take's own row: an earlier attempt of it committed and its reply was lost
        # (the store retried the take). It is this lease, held since then.
        return None, utc(row.expires_at)
    if row.later_holder is not None and not again:  # a later tick's run covers this one
        return Busy(customer, product, tick, "done", row.later_holder)
    now = clock["now"] if clock else utc(row.lease_now)
    expires = now + dt.timedelta(seconds=seconds)
    if row.done_at is not None and not again:
        return Busy(customer, product, tick, "done", row.holder)
    left = (utc(row.expires_at) - now).total_seconds()
    if row.done_at is None and left > 0 and not gone(row.holder, row.token):
        return Busy(customer, product, tick, "held", row.holder, left)
    if row.done_at is not None:  # again, refused by another tick's open lease, or raced
        busy, _ = _others(conn, sql, clock, pair, again)
        if busy is not None:
            return busy
    taken_from = str(row.holder) if row.done_at is None else None
    conn.execute(
        update(leases)
        .where(
            leases.c.customer == customer,
            leases.c.product == product,
            leases.c.tick == tick,
            leases.c.token == row.token,
        )
        .values(
            holder=holder,
            token=token,
            taken_at=now,
            expires_at=expires,
            done_at=None,
            takeovers=int(row.takeovers) + (1 if taken_from else 0),
        )
    )
    conn.execute(sql.sweep, {**pair, **clock})
    return taken_from, expires


def _others(
    conn: Connection,
    sql: LeaseSQL,
    clock: dict[str, dt.datetime],
    pair: dict[str, Any],
    again: bool,
) -> tuple[Busy | None, bool]:
    """What the pair's other ticks say about this take (every row of the pair read, none
    locked): Busy for a later tick's row (not `again`: done) or a live lease of another tick
    (held, by its holder, for its seconds left); an expired lease of another tick, or one
    whose holder is gone, is deleted (its crashed run is settled as any other, docs/audit.md).
    Also whether the tick has a row (then locked by another transaction: `claim` found none)."""
    customer, product, tick = pair["lease_customer"], pair["lease_product"], pair["lease_tick"]
    rows = sorted(conn.execute(sql.pair_rows, {**pair, **clock}).all(), key=lambda r: r.tick)
    later = [r for r in rows if utc(r.tick) > tick]
    if later and not again:
        return Busy(customer, product, tick, "done", later[-1].holder), False
    has_row = False
    for row in rows:
        if utc(row.tick) == tick:
            has_row = True
            continue
        if row.done_at is not None:
            continue
        now = clock["now"] if clock else utc(row.lease_now)
        left = (utc(row.expires_at) - now).total_seconds()
        if left > 0 and not gone(row.holder, row.token):
            return Busy(customer, product, tick, "held", row.holder, left), has_row
        conn.execute(sql.drop, {**pair, **clock, "other_tick": row.tick, "other_token": row.token})
    return None, has_row
