"""Idle runs' last records, written together: one state transaction for several runs.

A run that changed nothing and wrote nothing to the state database (no batch, no
settlement, no approval asked) still ends with a transaction of its own: its start, its
policy, its end, its rule history and status, the checkpoint of the trail's head and its
lease's end (worker/state/gather.py). On a shared product database where most customers
have nothing due, that transaction is most of an idle pair's cost.

Within one `run_pairs` call (`run --once`, the CronJobs; worker/app.py), such a run hands
its queued work over to `IdleEnds` instead of writing it; the work of up to `MOST_RUNS`
runs is then written in one transaction, in the order the runs ended: the records of each
run stay together and in their order, the head is locked and moved once, the audit records
and runs' rows go in one INSERT each (worker/state/held.py).

What waits, and what it costs:

- The runs' leases are kept (renewed) until their end is written, so no other process
  takes such a pair over meanwhile; then each lease ends (done for the tick) with its run's
  records, as before.
- A run's report, metrics (`RunRecorded`) and checkpoint event follow its records' commit.
  The log lines about its end carry its `run_id`, `customer` and `product`, as when the run
  wrote them itself (those of the joint transaction as a whole name no run).
- One checkpoint of the trail's head is made in that transaction, after every run's
  records (worker/checkpoints.py): it covers them all, as each run's own would have.
- The work is written when `MOST_RUNS` runs wait, when a run that wrote anything ends,
  before `run_pairs` waits for a pair another process holds, and when it returns.
- A process killed before that loses the waiting runs' records: runs that changed nothing.
  Their leases expire and another process runs those pairs in the tick (worker/leases.py).
  So does a run whose lease is lost while it waits (not renewed for the lease time: the
  state database out of reach, the process stalled), which another process may have taken
  over and run meanwhile: its records are not written, and it ends interrupted, as a run
  whose lease is lost between two batches (`LeaseLost`).
- When the joint transaction fails, each run's work is written again alone, as it would
  have been (`Gathering.flush`, with its own fallbacks): a run whose end another run
  recorded meanwhile (`RunClosed`) or whose records the state database refuses fails
  alone, never the others. The joint transaction leaves out only work to blame (a
  statement of a run's optional or droppable work that failed); it does not guess at a
  refusal at COMMIT, which would leave out the history and status, or the checkpoint and
  lease ends, of every run in it: the runs are then written alone, each guessing for itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from structlog.contextvars import bound_contextvars

from worker.checkpoints import Checkpointer, Queued
from worker.errors import RetentionError
from worker.state.gather import Gathering, Pending, using
from worker.state.store import StateStore

log = structlog.get_logger("worker.state")

MOST_RUNS = 32
"""Runs whose last records are written in one transaction, at most. The trail's head is
locked for that transaction: 32 idle runs' records take a few tens of milliseconds."""


class LeaseLost(RetentionError):
    """A waiting run's lease was lost before its records were written: they are not."""


Finish = Callable[[RetentionError | None, Queued | None], None]
"""Called once a run's handed-over work is written (None) or could not be (the error), with
the checkpoint queued with it: the last run of a joint transaction gets the one checkpoint
made for all (the others None), a run written alone its own; None without a checkpointer."""


@dataclass
class _Waiting:
    run_id: str
    store: StateStore
    work: list[Pending]
    finish: Finish
    lost: Callable[[], str] | None  # why the run's lease is no longer its own ("" while it is)
    # The log fields bound when the run handed its work over (its `run_id`, `customer` and
    # `product`: worker/logging.py `bind_run`), for the lines of its end written later.
    names: dict[str, Any] = field(default_factory=structlog.contextvars.get_contextvars)


class IdleEnds:
    """The last records of idle runs of one `run_pairs` call (see the module docstring)."""

    def __init__(
        self,
        checkpointer: Checkpointer | None,
        clock: Callable[[], dt.datetime],
        most: int = MOST_RUNS,
    ) -> None:
        if most < 1:
            raise ValueError(f"most must be at least 1 run, got {most}")
        self.checkpointer = checkpointer
        self.clock = clock
        self.most = most
        self._waiting: list[_Waiting] = []

    def __len__(self) -> int:
        return len(self._waiting)

    def take(
        self,
        gathered: Gathering,
        run_id: str,
        finish: Finish,
        lost: Callable[[], str] | None = None,
    ) -> bool:
        """Take a run's queued work (its end and its lease's end, queued after its last
        event, without a checkpoint) to write with others'; False, and nothing taken, when
        the run wrote to the state database already or its work is for more than one store:
        it flushes its own. `lost` says why the run's lease is no longer its own ("" while
        it is: worker/leases.py `Lease.lost`); its work is then not written."""
        handed = gathered.hand_over()
        if handed is None:
            return False
        store, work = handed
        if self._waiting and store is not self._waiting[0].store:
            self.flush()
        self._waiting.append(_Waiting(run_id, store, work, finish, lost))
        return True

    def full(self) -> bool:
        """Whether `MOST_RUNS` runs wait (the caller flushes once a run's lease is kept)."""
        return len(self._waiting) >= self.most

    def flush(self) -> None:
        """Write what waits: in one transaction, or, when that fails, each run's alone.
        Each run's `finish` is called, in the order the runs ended (first those whose lease
        was lost, whose work is not written: `_lease_kept`)."""
        waiting, self._waiting = self._waiting, []
        waiting = [run for run in waiting if self._lease_kept(run)]
        if not waiting:
            return
        if len(waiting) > 1:
            joint = Gathering(guess=False)  # a refusal no work is to blame for: each alone
            for run in waiting:
                for pending in run.work:
                    joint.add(run.store, pending)
            try:
                with using(joint):
                    queued = self._checkpoint()
                    joint.flush()
            except RetentionError as exc:
                log.warning(
                    "state.joint_end_failed",
                    runs=len(waiting),
                    error=str(exc),
                    detail="each run's records are written again alone",
                )
            else:
                for run in waiting[:-1]:
                    with bound_contextvars(**run.names):
                        run.finish(None, None)
                with bound_contextvars(**waiting[-1].names):
                    waiting[-1].finish(None, queued)
                return
        for run in waiting:
            with bound_contextvars(**run.names):
                self._alone(run)

    @staticmethod
    def _lease_kept(run: _Waiting) -> bool:
        """Whether the run still holds its lease; if not, it ends without its records."""
        why = run.lost() if run.lost is not None else ""
        if not why:
            return True
        detail = "its records, which waited to be written with other runs', are not written"
        with bound_contextvars(**run.names):
            log.warning("lease.lost", why=why, detail=detail)
            run.finish(LeaseLost(f"its lease was lost ({why}): {detail}"), None)
        return False

    def _alone(self, run: _Waiting) -> None:
        """Write one run's work in a transaction of its own (with its own checkpoint)."""
        alone = Gathering(run_id=run.run_id)
        for pending in run.work:
            alone.add(run.store, pending)
        queued = None
        try:
            with using(alone):
                queued = self._checkpoint()
                alone.flush()
        except RetentionError as exc:
            run.finish(exc, queued)
        else:
            run.finish(None, queued)

    def _checkpoint(self) -> Queued | None:
        """Queue the checkpoint after what the current gathering holds (`make_later`)."""
        if self.checkpointer is None:
            return None
        return self.checkpointer.make_later(self.clock())
