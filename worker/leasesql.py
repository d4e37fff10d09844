"""The statements of worker/leases.py, built once per lease time and database kind.

A lease is taken, renewed and ended for every run of a pair: its statements are built here
once, with bound parameters, so each use costs only the execution (no building, and
SQLAlchemy's compiled cache is found from the statement object without walking it again).

The lease clock (worker/leases.py `Leases.at`) is either the database's, PostgreSQL's
`statement_timestamp()` written into the statement (`db_clock`), or values the caller binds:
`now` and `expires` (`now` plus the lease time).

Taking a lease for a tick is one statement when the tick's row is new, or is done and the
taker asks `again` (a person's `run --once`): an INSERT … SELECT whose conflict does nothing,
or with `again` updates the tick's row only when it is done. The SELECT yields the new row
only when no other tick forbids it: a scheduled take (not `again`) none when the pair has a
row of a later tick (that tick's run covers this one's work), a take `again` none while the
pair has a lease not done of another tick. A lease not done of another tick also stops a
scheduled take, by the partial unique index `ux_leases_one_open` (at most one lease of a pair
not done, migration 0008): its conflict does nothing, and a take of a different tick at the same
instant waits for the other's transaction, so two takers of one pair never both win, also under
READ COMMITTED, where a NOT EXISTS alone would not see the other's uncommitted row. On
PostgreSQL the same statement deletes the pair's rows of older ticks that are done or expired,
only when the lease was taken (a data-modifying CTE that waits for the INSERT, so every taker
locks the tick's row first); on SQLite that DELETE is a second statement (`sweep`). When the
INSERT returns no row, the caller reads the tick's row (`claim`, with the holder of the pair's
latest later tick) and decides (held, done, or expired: taken over); when the tick has no row,
or before it takes a done row again, it reads the pair's rows (`pair_rows`) to say why.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import (
    DateTime,
    Executable,
    Integer,
    Interval,
    bindparam,
    delete,
    exists,
    func,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from worker.state.models import leases

_c = leases.c

Also = tuple[ColumnElement[Any], ...]
"""Labelled columns a take returns as well (`LeaseSQL.take`)."""


class LeaseSQL:
    """Every statement of one `Leases` on one kind of database (see the module docstring).

    Parameters (not named as columns: an UPDATE reserves those): `lease_customer`,
    `lease_product`, `lease_tick`; `lease_holder` and `lease_token` for a take; `mine` (the
    token) for a renewal or an end; `now` and `expires` unless `db_clock`.
    """

    def __init__(self, seconds: float, *, postgres: bool, db_clock: bool) -> None:
        self.postgres = postgres
        self.db_clock = db_clock
        self.seconds = float(seconds)
        lasts = dt.timedelta(seconds=seconds)
        now: Any
        expires: Any
        if db_clock:
            now = func.statement_timestamp(type_=DateTime(timezone=True))
            expires = now + literal(lasts, Interval())
        else:
            now = bindparam("now", type_=DateTime(timezone=True))
            expires = bindparam("expires", type_=DateTime(timezone=True))
        pair = (
            _c.customer == bindparam("lease_customer"),
            _c.product == bindparam("lease_product"),
        )
        tick = _c.tick == bindparam("lease_tick")
        mine = (*pair, tick, _c.token == bindparam("mine"))
        older = delete(leases).where(
            *pair,
            _c.tick < bindparam("lease_tick"),
            _c.done_at.is_not(None) | (_c.expires_at < now),
        )
        self.sweep: Executable = older
        """Delete the pair's rows of older ticks that are done or expired."""
        other = leases.alias("other")
        later = (
            select(other.c.holder)
            .where(
                other.c.customer == _c.customer,
                other.c.product == _c.product,
                other.c.tick > _c.tick,
            )
            .order_by(other.c.tick.desc())
            .limit(1)
            .scalar_subquery()
        )
        self.claim: Executable = (
            select(
                leases, later.label("later_holder"), *([now.label("lease_now")] if db_clock else [])
            )
            .where(*pair, tick)
            .with_for_update(skip_locked=True)
        )
        """The tick's row, locked, unless another transaction holds it (then no row), with the
        holder of the pair's latest row of a later tick (`later_holder`, else None)."""
        self.pair_rows: Executable = select(
            leases, *([now.label("lease_now")] if db_clock else [])
        ).where(*pair)
        """Every row of the pair, none locked (the rare path: why a take found no row)."""
        self.drop: Executable = delete(leases).where(
            *pair,
            _c.tick == bindparam("other_tick"),
            _c.token == bindparam("other_token"),
            _c.done_at.is_(None),
        )
        """Delete the expired lease of another tick (`other_tick`, `other_token`), or one whose
        holder is gone, that keeps a take out."""
        self.renew: Executable = (
            update(leases).where(*mine, _c.done_at.is_(None)).values(expires_at=expires)
        )
        self.done: Executable = update(leases).where(*mine).values(done_at=now, expires_at=now)
        self.release: Executable = delete(leases).where(*mine)
        self._clocks = (now, expires, older)
        self._take = {again: self._taking(now, expires, older, again) for again in (False, True)}
        self._take_also: dict[tuple[bool, Also], Executable] = {}

    def take(self, again: bool, also: Also = ()) -> Executable:
        """The statement that takes a new or (with `again`) done lease of a tick, returning
        `taken_at` and `expires_at`; no row when the tick's row exists and is not taken.

        `also`: labelled columns (a read the taker needs next, worker/pairstate.py) that
        the statement returns after those two when it took the lease, read in the same
        statement (PostgreSQL; elsewhere they are left out: read them apart). Built once
        per tuple of columns."""
        if not also or not self.postgres:
            return self._take[again]
        built = self._take_also.get((again, also))
        if built is None:
            built = self._take_also[(again, also)] = self._taking(*self._clocks, again, also)
        return built

    def _taking(
        self, now: Any, expires: Any, older: Any, again: bool, also: Also = ()
    ) -> Executable:
        dialect: Any = postgresql if self.postgres else sqlite
        other = leases.alias("other")
        mates = (
            other.c.customer == bindparam("lease_customer", type_=_c.customer.type),
            other.c.product == bindparam("lease_product", type_=_c.product.type),
        )
        at = bindparam("lease_tick", type_=_c.tick.type)
        forbidden: tuple[Any, ...]
        if again:  # never while another tick's lease is not done (a later done row: runs)
            forbidden = (*mates, other.c.tick != at, other.c.done_at.is_(None))
        else:  # a later tick's row covers this tick (another tick's open lease: the index)
            forbidden = (*mates, other.c.tick > at)
        row = select(
            bindparam("lease_customer", type_=_c.customer.type),
            bindparam("lease_product", type_=_c.product.type),
            at,
            bindparam("lease_holder", type_=_c.holder.type),
            bindparam("lease_token", type_=_c.token.type),
            now,
            expires,
            literal_column("0", Integer()),
        ).where(~exists(select(1).select_from(other).where(*forbidden)))
        columns = ["customer", "product", "tick", "holder", "token", "taken_at"]
        insert = dialect.insert(leases).from_select([*columns, "expires_at", "takeovers"], row)
        key = [_c.customer, _c.product, _c.tick]
        if again:
            # A done row is taken again, its takeovers kept; a row not done is left to the
            # caller (held, or expired: a takeover, which says whose lease it was).
            fresh = insert.excluded
            statement = insert.on_conflict_do_update(
                index_elements=key,
                set_={
                    "holder": fresh.holder,
                    "token": fresh.token,
                    "taken_at": fresh.taken_at,
                    "expires_at": fresh.expires_at,
                    "done_at": None,
                },
                where=_c.done_at.is_not(None),
            )
        else:  # any conflict: the tick's row, or another tick's lease not done
            statement = insert.on_conflict_do_nothing()
        # The rowcount of an INSERT is -1 on psycopg 3; the returned times say it was taken.
        statement = statement.returning(_c.taken_at, _c.expires_at)
        if self.postgres:
            taken = statement.cte("taken")
            swept = older.where(exists(select(1).select_from(taken))).cte("swept")
            statement = select(taken.c.taken_at, taken.c.expires_at, *also).add_cte(swept)
        return cast(Executable, statement)
