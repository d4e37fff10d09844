"""Writes that may wait: a run's bookkeeping gathered into the next write transaction.

A run that changes nothing used to pay one durable commit per record of its bookkeeping:
run started, the policy it followed, run finished, its rule history, its status. None of
them guards a change in a product database, so within a run they may wait and ride along
with the next write the run must make anyway:

    with gathering() as gathered:          # worker/run.py, around one run
        store.write_later(...)             # queued (run.started, policy, history, status)
        store.append_audit(intent)         # the queued work first, then the intent: ONE txn
        ...
        gathered.flush()                   # what is still queued, in one transaction

A real run queues its last writes after its end: the checkpoint of the chain's head (which
then covers run.finished, read in the same transaction) and its lease's end, so a run that
changed nothing commits twice: its lease taken, then everything else (worker/run.py).

What must be durable before a product change still is: a batch's intent is an ordinary
write, and everything queued before it commits in the same transaction, before it (so the
trail keeps its order: run.started is always recorded before the run's first intent). A run
that crashes before its first write leaves no record, and it changed nothing either.

The queue belongs to the context (a `ContextVar`): each thread running a pair has its own,
and work outside a `gathering()` (a lease renewal thread, the CLI) is written at once.
Queued work must be safe to repeat, as every state write is (see worker/state/store.py): it
is called with `retried=True` when an earlier transaction that carried it failed, because a
lost reply after COMMIT means that transaction may have committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from connectors.redact import describe
from worker.errors import RetentionError, StateError

if TYPE_CHECKING:
    from worker.state.store import StateStore

log = structlog.get_logger("worker.state")

Work = Callable[[Connection, bool], None]
"""Queued work: called with the carrying transaction's connection and `retried`."""


@dataclass
class Pending:
    """One queued write: what it records (a noun phrase, for messages) and the work.

    `optional`: bookkeeping whose failure must not lose the records around it (rule
    history, status: subscribers the bus does not require). Carried by a flush (a run's
    end, where it is queued), it runs like `droppable` work: no SAVEPOINT; its database
    error fails the flush's transaction, which `Gathering.flush` then writes again without
    it. Carried by another write (a batch's intent, whose failure would stop the batch), it
    runs under a SAVEPOINT: a database error rolls back that work alone. Either way the
    failure is logged (`state.write_skipped`, class and code only).

    `droppable`: the same promise without a SAVEPOINT's two round trips, for work queued
    last (a run's checkpoint): its failure (a database or worker error) fails the carrying
    transaction, and `Gathering.flush` then writes the rest again without it (`failed`
    holds the error of the last attempt). `committed`, when given, is called once the
    transaction that carried the work committed; it must not raise (it sets flags).

    `names`: the log fields bound where the work was queued (a run's `run_id`, `customer`,
    `product`: worker/logging.py `bind_run`), for the lines about it written elsewhere (in a
    transaction of several runs' work: worker/idleends.py).
    """

    doing: str
    work: Work
    optional: bool = False
    tried: bool = False
    droppable: bool = False
    committed: Callable[[], None] | None = None
    failed: BaseException | None = None
    names: dict[str, Any] = field(default_factory=structlog.contextvars.get_contextvars)

    def run(self, conn: Connection, *, flushing: bool = False) -> None:
        """Do the work in `conn`'s transaction (`retried` once a carrier has failed);
        `flushing`: the carrier is `Gathering.flush`, which writes the rest again when
        `droppable` or `optional` work fails."""
        if self.droppable or (self.optional and flushing):
            caught: tuple[type[Exception], ...] = (
                (SQLAlchemyError, RetentionError) if self.droppable else (SQLAlchemyError,)
            )
            self.failed = None
            try:
                self.work(conn, self.tried)
            except caught as exc:
                self.failed = exc
                raise
            return
        if not self.optional:
            self.work(conn, self.tried)
            return
        try:
            with conn.begin_nested():
                self.work(conn, self.tried)
        except SQLAlchemyError as exc:
            log.warning("state.write_skipped", recording=self.doing, error=describe(exc))


@dataclass
class Gathering:
    """The writes queued in one context, per state store, in the order they were queued.

    `run_id`: the run whose bookkeeping this is. A record of another run (the end of a run a
    crash left open, which this run closes) is not queued: until it is written, that run
    looks open to anyone reconciling meanwhile, who would close it a second time.

    `guess`: whether `flush` guesses at a failure no work is to blame for (see there). Not
    for the work of several runs (worker/idleends.py): the guess would leave out every run's
    optional or droppable work, where each run's own flush leaves out only its own.
    """

    queued: dict[int, tuple[StateStore, list[Pending]]] = field(default_factory=dict)
    run_id: str | None = None
    flushing: bool = False  # the carrier of the queued work is `flush` (`Pending.run`)
    wrote: bool = False  # a write of this context carried queued work (and committed)
    guess: bool = True

    def add(self, store: StateStore, pending: Pending) -> None:
        """Queue `pending` for `store`."""
        self.queued.setdefault(id(store), (store, []))[1].append(pending)

    def taken(self, store: StateStore) -> list[Pending]:
        """The work queued for `store` (still queued until `done`)."""
        found = self.queued.get(id(store))
        return list(found[1]) if found is not None else []

    def done(self, store: StateStore, carried: list[Pending]) -> None:
        """`carried` committed: drop it from the queue, and tell those that asked."""
        self.wrote = True
        self._drop(store, carried)
        for pending in carried:
            if pending.committed is not None:
                pending.committed()

    def may_hand_over(self) -> bool:
        """Whether `hand_over` would take the queued work: this context wrote nothing yet
        and its work is for one store."""
        return not self.wrote and len(self.queued) == 1

    def hand_over(self) -> tuple[StateStore, list[Pending]] | None:
        """Take the queued work out of this gathering, to be written with other runs' (a run
        that wrote nothing yet: worker/idleends.py); None, and nothing taken, unless
        `may_hand_over`."""
        if not self.may_hand_over():
            return None
        [(store, work)] = self.queued.values()
        self.queued.clear()
        return store, work

    def flush(self) -> None:
        """Commit what is still queued: one transaction per state store.

        Raises StateError (the store's, naming what was being recorded) when it cannot;
        the work then stays queued, marked as tried. When a `droppable` or `optional` work
        failed, it is dropped (logged as `state.write_skipped`) and the rest is written
        again without it. When the transaction failed with no work to blame (at COMMIT: a
        deferred constraint), it is written again without every `optional` work, then, if
        that fails too, with it but without every `droppable` one, then without both: they
        never take the records around them along, and a refused checkpoint or lease end
        does not take the run's history and status along either. Not after a transient
        failure (the store retried it already), nor without `guess`.
        """
        for store, pending in list(self.queued.values()):
            kept = list(pending)  # the work no failure was blamed on, in the queue's order
            left_out: list[Pending] = []  # by the suspicion of the attempt being made
            # Left out in turn when no work is to blame: the optional work, then the
            # droppable work alone (the optional work back: it was not to blame), then both.
            suspects = [(_optional,), (_droppable,), (_optional, _droppable)] if self.guess else []
            reached: list[bool] = []  # the carrier ran: every queued work did, unrefused

            def carrier(_conn: Connection, reached: list[bool] = reached) -> None:
                reached.append(True)  # the queued work is all there is to do

            while True:
                reached.clear()
                try:
                    self.flushing = True
                    store.write(f"recording {pending[0].doing} and what followed it", carrier)
                    break
                except RetentionError as exc:
                    # Not after a transient failure (the store retried it already): the
                    # state database is away, and leaving work out would not bring it back.
                    blameless = not (isinstance(exc, StateError) and exc.transient)
                    taken = self.taken(store)
                    dropped = [p for p in taken if p.failed is not None] if blameless else []
                    if not dropped and not reached:
                        raise  # a required work failed (a run closed by another): its own
                    if not dropped:
                        left_out = []
                        while not left_out and suspects and blameless:
                            suspect = suspects.pop(0)
                            left_out = [p for p in kept if any(s(p) for s in suspect)]
                            if len(left_out) == len(kept):
                                left_out = []  # nothing would be written: not a suspicion
                        if not left_out:
                            raise
                        for gone in left_out:
                            gone.failed = exc
                finally:
                    self.flushing = False
                for gone in dropped:
                    self._skipped(gone)
                kept = [p for p in kept if not any(p is d for d in dropped)]
                pending = [p for p in kept if not any(p is o for o in left_out)]
                for again in pending:
                    again.failed = None  # left out by an earlier suspicion, not to blame
                self._keep(store, pending)
                if not pending:
                    break
            for gone in left_out:
                self._skipped(gone)

    def _skipped(self, gone: Pending) -> None:
        with structlog.contextvars.bound_contextvars(**gone.names):
            log.warning(
                "state.write_skipped",
                recording=gone.doing,
                error=describe(gone.failed) if gone.failed is not None else "",
                detail="the records queued with it are written without it",
            )

    def _keep(self, store: StateStore, work: list[Pending]) -> None:
        if work:
            self.queued[id(store)] = (store, work)
        else:
            self.queued.pop(id(store), None)

    def _drop(self, store: StateStore, dropped: list[Pending]) -> None:
        self._keep(store, [p for p in self.taken(store) if not any(p is d for d in dropped)])


def _optional(pending: Pending) -> bool:
    return pending.optional


def _droppable(pending: Pending) -> bool:
    return pending.droppable


_CURRENT: ContextVar[Gathering | None] = ContextVar("retention_state_gathering", default=None)


def current() -> Gathering | None:
    """The gathering of this context, if a `gathering()` is active."""
    return _CURRENT.get()


@contextmanager
def using(gathered: Gathering) -> Iterator[Gathering]:
    """Make `gathered` this context's gathering for the block (a joint flush of work
    handed over by several runs: worker/idleends.py)."""
    token = _CURRENT.set(gathered)
    try:
        yield gathered
    finally:
        _CURRENT.reset(token)


@contextmanager
def gathering(run_id: str | None = None) -> Iterator[Gathering]:
    """Queue `write_later` work of this context until the next write or `flush()`.

    Work still queued when the block ends (its flush failed or never ran) is dropped: the
    caller flushes explicitly where a failure must be reported (worker/run.py does, after
    publishing the run's end). Nested use reuses the outer gathering.
    """
    outer = _CURRENT.get()
    if outer is not None:
        yield outer
        return
    mine = Gathering(run_id=run_id)
    token = _CURRENT.set(mine)
    try:
        yield mine
    finally:
        _CURRENT.reset(token)
