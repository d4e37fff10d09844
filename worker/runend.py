"""The end of a run (`RunEnds`, a part of worker/run.py's `Runner`): its last records queued
and written (worker/state/gather.py) or handed over to be written with other idle runs'
(worker/idleends.py), its checkpoint, its lease's end, and `RunRecorded` for the metrics
once the trail holds the end (or refused it).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import structlog

from worker.checkpoints import Checkpointer, Queued, publish_checkpoint
from worker.errors import RetentionError
from worker.events import EventBus, Outcome, RunRecorded
from worker.idleends import IdleEnds, LeaseLost
from worker.leases import Lease
from worker.runreport import RunReport
from worker.runstate import done_for_tick
from worker.state.gather import Gathering
from worker.state.runlog import RunClosed

log = structlog.get_logger("worker.run")


class RunEnds:
    """The end of a run, for `Runner` (which sets these attributes)."""

    bus: EventBus
    clock: Callable[[], dt.datetime]
    checkpointer: Checkpointer | None
    idle_ends: IdleEnds | None
    _held: threading.local

    @staticmethod
    def _end_lease(lease: Lease, outcome: Outcome | None) -> None:
        """Done for the tick when the run succeeded, ended partial or failed (the next tick
        tries again: `done_for_tick`); released when it was interrupted, so another process
        may finish it in this tick.
        A failure to record it is logged: the lease then simply expires."""
        if lease.ended:  # with the run's last records (`_queue_end`)
            return
        done = done_for_tick(outcome) and not lease.lost
        try:
            lease.end(done=done)
        except RetentionError as exc:
            log.warning(
                "lease.end_failed",
                customer=lease.customer,
                product=lease.product,
                tick=lease.tick.isoformat(),
                error=str(exc),
            )

    def _may_hand_over(self, gathered: Gathering, report: RunReport) -> bool:
        """Whether a run's last records go to `idle_ends`: a succeeded real run that wrote
        nothing to the state database yet (worker/idleends.py)."""
        ends = self.idle_ends
        return (
            ends is not None
            and not report.dry_run
            and report.outcome is Outcome.SUCCEEDED
            and gathered.may_hand_over()
        )

    def _hand_over(
        self, gathered: Gathering, report: RunReport, ended: dt.datetime, duration: float
    ) -> bool:
        """Hand the run's last records (and its lease's end) over to `idle_ends`; False:
        it writes them itself (with no checkpoint of its own: `publish_checkpoint` makes
        one)."""
        ends = self.idle_ends
        if ends is None:
            return False
        release: Callable[[Outcome | None], None] | None = getattr(self._held, "release", None)

        def finish(failure: RetentionError | None, queued: Queued | None) -> None:
            # The checkpoint covering several runs' records is published once, by the last.
            self._recorded(report, ended, duration, False, queued, failure, queued is not None)
            if release is not None:
                release(report.outcome)

        lease: Lease | None = getattr(self._held, "lease", None)
        lost = (lambda: lease.lost) if lease is not None else None
        if not ends.take(gathered, report.run_id, finish, lost):
            return False
        self._held.__dict__.pop("release", None)  # the lease ends with the records
        self._held.handed = True
        return True

    def _recorded(
        self,
        report: RunReport,
        ended: dt.datetime,
        duration: float,
        dry_run: bool,
        queued: Queued | None,
        failure: RetentionError | None,
        checkpoint: bool = True,
    ) -> None:
        """After the run's last records were written (`failure` None) or could not be:
        the report's outcome, the checkpoint's event (`checkpoint`) and `RunRecorded`."""
        if isinstance(failure, RunClosed):  # another run closed this one (lease lost): keep it
            log.warning("run.closed_by_another", error=str(failure))
            # The trail says crashed; this process saw its run cut off by the lost lease.
            report.outcome = Outcome.INTERRUPTED
        elif isinstance(failure, LeaseLost):  # while its records waited (worker/idleends.py)
            report.outcome = Outcome.INTERRUPTED
        elif failure is not None:  # the trail could not record the end: say so, go on
            report.outcome = Outcome.FAILED
        if failure is not None:
            report.error = f"{report.error}; {failure}" if report.error else str(failure)
        elif checkpoint:
            publish_checkpoint(self.checkpointer, self.bus, self.clock(), queued)
        # Counted only now, as stored or refused: metrics never count an end the trail lacks.
        names = {"run_id": report.run_id, "customer": report.customer, "product": report.product}
        recorded = RunRecorded(
            outcome=report.outcome,
            at=ended,
            duration_seconds=duration,
            stored=failure is None,
            dry_run=dry_run,
            **names,
        )
        try:
            self.bus.publish(recorded)
        except RetentionError as exc:  # a required subscriber down for every event (the trail)
            log.warning("run.recorded_unpublished", run_id=report.run_id, error=str(exc))

    def _queue_end(self, outcome: Outcome, dry_run: bool, *, checkpoint: bool) -> Queued | None:
        """Queue a real run's checkpoint (unless the records go to `idle_ends`, which makes
        one for all) and its lease's end after its end record, for the flush
        (worker/state/gather.py). The checkpoint is dropped, not the run's records, when it
        fails; the lease's end is redone alone by `_end_lease` when the flush fails.
        """
        if dry_run:
            return None
        queued = None
        if checkpoint and self.checkpointer is not None:
            queued = self.checkpointer.make_later(self.clock())
        lease: Lease | None = getattr(self._held, "lease", None)
        if lease is not None:
            lease.end_later(done=done_for_tick(outcome))
        return queued
