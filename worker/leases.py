"""Leases: one process at a time works a customer × product, and only once per tick.

Several daemons (replicas) and `run --once` processes (Kubernetes CronJobs) may share one
state database. Before a real run of a pair, a process takes the pair's lease for the
pair's current *tick*: the latest instant at or before the run's `now` that the pair's
schedule names (worker/scheduler.py `schedule_for`), so every process that runs the pair
for that schedule slot agrees on the key `(customer, product, tick)`.

    take  → INSERT … SELECT … WHERE NOT EXISTS (…) ON CONFLICT DO NOTHING (with `again`: DO
            UPDATE of a done row), one statement (worker/leasesql.py), refused while another
            tick of the pair forbids it (below); else the row, locked (FOR UPDATE SKIP
            LOCKED), or the pair's rows (worker/leaseclaim.py):
            done          → skip ("done": another process finished the pair in this tick)
            not expired   → skip ("held": another process works it now)
            expired, or its holder certainly gone (a dead pid on this host)
                          → take it over, counted in `takeovers`
    work  → a heartbeat thread renews the lease every third of RETENTION_LEASE_SECONDS;
            between batches the run asks `lost`: a lease taken over, or not renewed for
            RETENTION_LEASE_SECONDS, stops the run as interrupted before its next batch
    end   → succeeded, partial or failed: marked done (the next tick runs the pair again);
            interrupted: released (deleted), so another process may run it in this tick;
            a run's end rides in the transaction of its last records (`end_later`), else
            (that transaction failed) it is its own

One process at a time works a pair, whatever the tick: a take is refused while the pair has
a live lease (not done, not expired, holder not gone) of another tick ("held", by that
holder, for its seconds left), so a run that outlasts its tick keeps the next tick's run
waiting; an expired lease of another tick, or one whose holder is gone, is deleted and the
take goes on (the crashed run is settled as any other). A scheduled take (not `again`) is
also refused when the pair has a row of a later tick ("done", never "held": that tick's run
covers this tick's work), so a daemon that asks again for the tick of its first try never
runs a tick it was done in after a newer tick's take swept its row. A take `again` (a
person's `run --once`) beside a later tick's row runs, as a person asked, but never while
that tick's lease is live. The database keeps this with the partial unique index
`ux_leases_one_open` (at most one lease of a pair not done; migration 0008), so two takers of
different ticks at the same instant never both win.

Expiry is judged by the state database's clock (PostgreSQL `statement_timestamp()`, read in
the statement that takes, renews or ends the lease, so the clock costs no round trip of its
own; SQLite is one file on one host, so the host's clock), never by the clocks of several
pods. The holder is `host|pid` (worker/owner.py) plus a random token per take, so a
restarted container that got the same host name and pid never mistakes an old lease for its
own.
On PostgreSQL concurrent takers are kept apart by the primary key, `ux_leases_one_open` and
row locks (a take waits for another transaction's change of the pair's row the take would
conflict with: with `again` the tick's done row, any take another tick's lease being taken
or ended; at most the lock timeout, then it judges the rows as they were left, or past the
lock timeout says the pair is held by another process; a take `again` the index refuses
after that wait says the same); on SQLite by its single writer (BEGIN IMMEDIATE). A taker
also deletes the pair's leases of older ticks that are done or expired, so the table holds
about one row per pair (on PostgreSQL in the statement that takes).

The rows hold customer and product names, times and `host|pid`: no personal data.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from connectors.base import LockTimeout
from connectors.errors import timeout_kind
from worker.errors import RetentionError, StateError
from worker.leaseclaim import TOKENS as _TOKENS
from worker.leaseclaim import Busy as Busy  # re-exported
from worker.leaseclaim import Why as Why  # re-exported
from worker.leaseclaim import claim
from worker.leaseclaim import utc as _utc
from worker.leasesql import Also, LeaseSQL
from worker.leaseticks import latest_tick as latest_tick  # re-exported
from worker.leaseticks import pair_tick as pair_tick  # re-exported
from worker.owner import process_owner
from worker.settings import DEFAULT_LEASE_SECONDS
from worker.state import StateStore

log = structlog.get_logger("worker.leases")

Clock = Callable[[], dt.datetime]


class Leases:
    """Takes, renews and ends the leases of pairs in the state database.

    `seconds` is the lease time (RETENTION_LEASE_SECONDS, at least 1). `clock` replaces the
    database's clock (tests only); `holder` replaces `host|pid`. Every method raises
    StateError (worker/errors.py) when the state database fails beyond the retry budget.
    """

    def __init__(
        self,
        store: StateStore,
        seconds: float = DEFAULT_LEASE_SECONDS,
        *,
        clock: Clock | None = None,
        holder: str | None = None,
    ) -> None:
        if seconds <= 0:
            raise ValueError(f"a lease lasts more than 0 seconds, not {seconds}")
        self.store = store
        self.seconds = float(seconds)
        self.clock = clock
        self.holder = holder or process_owner()
        self._sql: dict[bool, LeaseSQL] = {}  # by kind: PostgreSQL or not

    def sql(self, conn: Connection) -> LeaseSQL:
        """This instance's statements for `conn`'s kind of database (built once)."""
        postgres = conn.dialect.name == "postgresql"
        built = self._sql.get(postgres)
        if built is None:
            db_clock = postgres and self.clock is None
            built = self._sql[postgres] = LeaseSQL(
                self.seconds, postgres=postgres, db_clock=db_clock
            )
        return built

    def at(self, sql: LeaseSQL) -> dict[str, dt.datetime]:
        """The lease clock's parameters for one statement: none with the database's clock
        (PostgreSQL without an injected clock: `statement_timestamp()`, in the statement, no
        round trip of its own), else `now` (UTC: the injected clock's, or SQLite's host
        clock) and `expires` (`now` plus the lease time)."""
        if sql.db_clock:
            return {}
        now = _utc(self.clock()) if self.clock is not None else dt.datetime.now(dt.UTC)
        return {"now": now, "expires": now + dt.timedelta(seconds=self.seconds)}

    def take(
        self,
        customer: str,
        product: str,
        tick: dt.datetime,
        *,
        again: bool = False,
        also: Also = (),
        also_params: Mapping[str, Any] | None = None,
    ) -> Lease | Busy:
        """Take the lease of `customer` × `product` for `tick` (aware), or say who has it.

        With `again`, a lease already done in this tick is taken anyway (a person's
        `run --once`, not `--scheduled`), also beside a later tick's row; a lease another
        live process holds, in this tick or another, never is. Without `again`, a later
        tick's row says "done" (its run covers this tick's work).

        `also` (labelled columns, their parameters in `also_params`) is read in the
        statement that takes the lease where it can be (`LeaseSQL.take`): the lease's
        `also` then holds their values, read after the statement's start; else None (read
        them apart). Only the first attempt carries them: once it failed, the retries take
        the lease without them, within the one retry budget of the take.
        """
        tick = _utc(tick)
        token = uuid.uuid4().hex
        pair = {"lease_customer": customer, "lease_product": product, "lease_tick": tick}

        waits: list[bool] = []  # whether the take may wait on another's row (PostgreSQL)

        def write(conn: Connection) -> Lease | Busy:
            sql = self.sql(conn)
            carried = also if not waits else ()  # an attempt after a failure: not the read
            waits.append(sql.postgres)
            clock = self.at(sql)
            for retried in (False, True):
                taken = conn.execute(
                    sql.take(again, carried),
                    {
                        **(also_params or {}),
                        **pair,
                        **clock,
                        "lease_holder": self.holder,
                        "lease_token": token,
                    },
                ).first()
                if taken is not None:  # a new row, or (again) a done one: one statement
                    if not sql.postgres:  # there the statement swept older ticks itself
                        conn.execute(sql.sweep, {**pair, **clock})
                    expires = _utc(taken.expires_at)
                    found = Lease(self, customer, product, tick, token, None, expires)
                    if carried and sql.postgres:
                        found.also = tuple(taken)[2:]
                    return found
                claimed = claim(conn, sql, clock, pair, self.holder, token, again, retried)
                if isinstance(claimed, Busy):
                    return claimed
                if claimed is not None:  # taken: done and again, or taken over
                    taken_from, expires = claimed
                    return Lease(self, customer, product, tick, token, taken_from, expires)
            raise AssertionError("a take is tried at most twice")  # pragma: no cover

        _TOKENS.add(token)  # before the row exists: this process's other threads see it live
        taken: Lease | Busy | None = None
        try:
            taken = self.store.write(f"taking the lease of {customer} × {product}", write)
        except StateError as exc:
            # A take on PostgreSQL waits on a row of the pair another transaction locked or
            # wrote (with `again` the tick's done row; any take another tick's lease being
            # taken or ended, by `ux_leases_one_open`); one that holds it past the lock timeout
            # is another process at work on the pair: held, as the claim's SKIP LOCKED says,
            # not a failure of the state database. So is a take `again` the index refuses once
            # that wait ends: another process took the pair in another tick at the same instant
            # (the scheduled take's INSERT does nothing on that conflict).
            cause = exc.__cause__ or exc
            if not (waits and waits[-1]) or (
                timeout_kind(cause) is not LockTimeout and not isinstance(cause, IntegrityError)
            ):
                raise
            taken = Busy(customer, product, tick, "held", "another process", self.seconds)
        finally:
            if not isinstance(taken, Lease):
                _TOKENS.discard(token)
        if isinstance(taken, Lease) and taken.taken_from is not None:
            log.warning(
                "lease.taken_over",
                customer=customer,
                product=product,
                tick=tick.isoformat(),
                previous_holder=taken.taken_from,
                detail="its holder stopped renewing it (crashed or cut off); this process runs "
                "the pair",
            )
        return taken


class Lease:
    """A lease this process holds: renew it while working, then `end` it.

    `taken_from` is the `host|pid` of the holder whose expired lease this one took over,
    else None; `expires_at` when the lease expires unless renewed (UTC, by the lease clock,
    as taken). `lost` turns true once the lease was taken over by another process, or could
    not be renewed for the lease time: the run must stop before its next batch.
    """

    def __init__(
        self,
        leases_: Leases,
        customer: str,
        product: str,
        tick: dt.datetime,
        token: str,
        taken_from: str | None,
        expires_at: dt.datetime | None = None,
    ) -> None:
        self._leases = leases_
        self.customer = customer
        self.product = product
        self.tick = tick
        self.token = token
        self.taken_from = taken_from
        self.expires_at = expires_at  # when taken (UTC, lease clock); renewals extend the row
        self._confirmed = time.monotonic()  # the lease lasts at least `seconds` from here
        self._lost = ""
        self._stop = threading.Event()
        self._ending = False
        self.ended = False  # ended with the run's records (`end_later`)
        # The values of `Leases.take`'s `also`, when its statement read them (else None).
        self.also: tuple[Any, ...] | None = None

    def _mine(self, conn: Connection) -> tuple[LeaseSQL, dict[str, Any]]:
        """The statements for `conn` and the parameters that name this take's row (its
        token), with the lease clock's."""
        sql = self._leases.sql(conn)
        return sql, {
            "lease_customer": self.customer,
            "lease_product": self.product,
            "lease_tick": self.tick,
            "mine": self.token,
            **self._leases.at(sql),
        }

    @property
    def lost(self) -> str:
        """Why the lease is no longer safely this process's ("" while it is)."""
        if not self._lost and time.monotonic() - self._confirmed > self._leases.seconds:
            self._lost = f"not renewed for {self._leases.seconds:g} s"
        return self._lost

    def renew(self) -> bool:
        """Extend the lease by the lease time from now; False when it is no longer ours."""
        started = time.monotonic()

        def write(conn: Connection) -> int:
            sql, mine = self._mine(conn)
            return int(conn.execute(sql.renew, mine).rowcount)

        mine = self._leases.store.write(f"renewing the lease of {self._names()}", write) == 1
        if mine:
            self._confirmed = started
        elif not self._lost and not self._ending:
            self._lost = "taken over by another process"
        return mine

    def end(self, *, done: bool) -> None:
        """Mark the pair done in this tick (`done`), or release the lease for another process,
        in a transaction of its own. Raises StateError when the state database fails."""
        self._stop.set()
        _TOKENS.discard(self.token)
        self._leases.store.write(
            f"ending the lease of {self._names()}", lambda conn: self.end_in(conn, done=done)
        )

    def end_in(self, conn: Connection, *, done: bool) -> None:
        """The statements of `end` in `conn`'s transaction: done (done_at and expires_at set to
        the lease clock's now, one statement) or released (deleted); only this take's row (its
        token)."""
        sql, mine = self._mine(conn)
        conn.execute(sql.done if done else sql.release, mine)

    def end_later(self, *, done: bool) -> None:
        """Queue the lease's end with the run's last records (`write_later`, after the run's
        end; worker/state/gather.py): it commits with them, then `ended` turns true and the
        renewals stop. A lease `lost` by then is released, never marked done. When that
        transaction fails, or the end alone fails in it (queued droppable: the records are
        written again without it), `ended` stays false and the caller ends the lease with
        `end`."""
        self._ending = True  # a renewal that finds the row done now is no loss

        def work(conn: Connection, _retried: bool) -> None:
            self.end_in(conn, done=done and not self.lost)

        def committed() -> None:
            self.ended = True
            self._stop.set()
            _TOKENS.discard(self.token)

        # Droppable: a lease's end the database refuses must not take the run's records
        # with it (they are written again without it; the caller then ends it alone).
        self._leases.store.write_later(
            f"the end of the lease of {self._names()}", work, droppable=True, committed=committed
        )

    @contextmanager
    def kept(self) -> Iterator[Lease]:
        """Renew the lease in a background thread every third of the lease time, until the
        block ends; a renewal that finds the lease gone marks it `lost` (and is logged)."""
        thread = threading.Thread(target=self._beat, name=f"lease {self._names()}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=self._leases.seconds)

    def _beat(self) -> None:
        while not self._stop.wait(self._leases.seconds / 3):
            try:
                if self.renew():
                    continue
            except RetentionError as exc:
                log.warning("lease.renew_failed", **self._fields(), error=str(exc))
                if not self.lost:
                    continue
            if self._ending and not self.lost:  # ended with the run's records meanwhile
                return
            log.warning("lease.lost", **self._fields(), why=self.lost)
            return

    def _names(self) -> str:
        return f"{self.customer} × {self.product}"

    def _fields(self) -> dict[str, str]:
        return {"customer": self.customer, "product": self.product, "tick": self.tick.isoformat()}
