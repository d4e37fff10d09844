"""The runs the state database keeps: a run's start and outcome, and the queries over them.

`RunLog` is a base of `worker.state.store.StateStore`, which supplies the engine, the error
wrapping (`StateError` naming the database by its masked URL), write transactions and the
retry budget. Every write here is safe to repeat: a run's start is inserted only once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from worker.errors import StateError
from worker.state.held import INSERT_RUN, held
from worker.state.models import runs
from worker.state.plumbing import Plumbing
from worker.state.records import RunRecord, _aware, utc

OUTCOMES = frozenset({"succeeded", "partial", "failed", "interrupted", "crashed"})

# Built once: each call would otherwise build and hash a new statement.
_FINISH = (
    runs.update()
    .where(runs.c.run_id == bindparam("finish_run_id"), runs.c.outcome.is_(None))
    .values(
        outcome=bindparam("outcome"),
        finished_at=bindparam("finished_at"),
        rows_changed=bindparam("rows_changed"),
        error=bindparam("error"),
    )
)
# The row with its end: whether it was inserted is its rowcount (SQLAlchemy keeps an
# INSERT's only when asked to).
_INSERT_ENDED = {
    name: insert.execution_options(preserve_rowcount=True) for name, insert in INSERT_RUN.items()
}
_ENDED = select(runs.c.outcome, runs.c.finished_at, runs.c.rows_changed, runs.c.error).where(
    runs.c.run_id == bindparam("ended_run_id")
)


class RunLog(Plumbing):
    """Recording runs and reading them back (the `runs` table)."""

    def start_run(
        self,
        run_id: str,
        customer: str,
        product: str,
        at: dt.datetime,
        dry_run: bool,
        owner: str | None = None,
    ) -> None:
        """Record that a run started (once, even when a retry repeats the call); `owner` is
        the `host|pid` of the process running it (worker/owner.py)."""

        def write() -> None:
            with self._write(f"recording the start of run {run_id}") as conn:
                start_run_in(conn, run_id, customer, product, at, dry_run, owner)

        self._retrying(write)

    def finish_run(
        self,
        run_id: str,
        outcome: str,
        at: dt.datetime,
        rows_changed: int,
        error: str | None,
    ) -> None:
        """Record a run's outcome; StateError when the run was never started."""

        def write() -> None:
            with self._write(f"recording the end of run {run_id}") as conn:
                finish_run_in(conn, run_id, outcome, at, rows_changed, error, self.url)

        self._retrying(write)

    def recent_runs(self, limit: int = 20) -> list[RunRecord]:
        """The newest runs first."""
        query = select(runs).order_by(runs.c.started_at.desc(), runs.c.run_id.desc()).limit(limit)

        def read() -> Any:
            with self._errors("listing recent runs"), self._engine.connect() as conn:
                return conn.execute(query).mappings().all()

        rows = self._retrying(read)
        return [
            RunRecord(
                **{
                    **r,
                    "started_at": utc(r["started_at"]),
                    "finished_at": utc(r["finished_at"]) if r["finished_at"] else None,
                    "dry_run": bool(r["dry_run"]),
                    "rows_changed": int(r["rows_changed"]),
                }
            )
            for r in rows
        ]

    def last_started(self, customer: str, product: str) -> dt.datetime | None:
        """When the newest real (not dry) run of a customer × product started, if any."""
        query = select(func.max(runs.c.started_at)).where(
            runs.c.customer == customer, runs.c.product == product, runs.c.dry_run.is_(False)
        )

        def read() -> Any:
            with self._errors("reading the last run"), self._engine.connect() as conn:
                return conn.execute(query).scalar_one_or_none()

        found = self._retrying(read)
        return utc(found) if found is not None else None


def start_run_in(
    conn: Connection,
    run_id: str,
    customer: str,
    product: str,
    at: dt.datetime,
    dry_run: bool,
    owner: str | None = None,
) -> None:
    """Insert the run's row in `conn`'s transaction, unless it is there (a repeated call).

    One statement, INSERT … ON CONFLICT (run_id) DO NOTHING (both state backends have it:
    PostgreSQL docs, "INSERT"; SQLite docs, "UPSERT"): a first attempt needs no lookup, and a
    retry whose earlier attempt committed (its reply was lost) finds the row and adds none.
    """
    values = _start(run_id, customer, product, at, dry_run, owner)
    conn.execute(INSERT_RUN[conn.dialect.name], values)


def start_run_later_in(
    conn: Connection,
    run_id: str,
    customer: str,
    product: str,
    at: dt.datetime,
    dry_run: bool,
    owner: str | None = None,
) -> None:
    """`start_run_in`, held back until the transaction ends (worker/state/held.py) where it
    may: the run's end recorded in the same transaction then inserts the row with both
    (`finish_run_in`, one statement instead of two). Elsewhere (a transaction that holds
    nothing back, a SAVEPOINT) it is `start_run_in`."""
    mine = held(conn)
    if mine is None or not mine.deferring or conn.get_nested_transaction() is not None:
        start_run_in(conn, run_id, customer, product, at, dry_run, owner)
        return
    mine.starts.setdefault(run_id, _start(run_id, customer, product, at, dry_run, owner))


def _start(
    run_id: str,
    customer: str,
    product: str,
    at: dt.datetime,
    dry_run: bool,
    owner: str | None,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "customer": customer,
        "product": product,
        "started_at": _aware(at, "started_at"),
        "dry_run": dry_run,
        "rows_changed": 0,
        "owner": owner,
    }


def finish_run_in(
    conn: Connection,
    run_id: str,
    outcome: str,
    at: dt.datetime,
    rows_changed: int,
    error: str | None,
    database: str,
) -> None:
    """Set the run's outcome in `conn`'s transaction, once. ValueError for an unknown
    outcome; StateError (naming `database`, a masked URL) when the run was never started;
    RunClosed when it already has another outcome (a run a crash or a lost lease left open
    that another run closed meanwhile: its end is recorded once). The same end again (a
    retry whose first attempt committed) changes nothing."""
    outcome = str(outcome)
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, got {outcome!r}")
    finished_at = _aware(at, "finished_at")
    end = {
        "outcome": outcome,
        "finished_at": finished_at,
        "rows_changed": rows_changed,
        "error": error,
    }
    mine = held(conn)
    start = mine.starts.pop(run_id, None) if mine is not None else None
    if start is not None:  # started in this transaction: one row with both ends
        inserted = conn.execute(_INSERT_ENDED[conn.dialect.name], {**start, **end})
        if inserted.rowcount == 1:
            return
        # The row is there: an earlier attempt of this transaction committed (its reply
        # was lost), and another run may have closed it since. As for any run:
    result = conn.execute(_FINISH, {"finish_run_id": run_id, **end})
    if result.rowcount == 1:
        return
    found = conn.execute(_ENDED, {"ended_run_id": run_id}).one_or_none()
    if found is None:
        raise StateError(f"run {run_id} was never started in {database}; cannot finish it")
    # The same end in every field: the run.finished record this one carries was found by
    # the retry (`AuditLog._append`). Two closers of a crashed run at the same instant
    # differ in their error (each names itself) and the second is refused.
    if (found.outcome, utc(found.finished_at), int(found.rows_changed), found.error) == (
        outcome,
        finished_at,
        rows_changed,
        error,
    ):
        return
    raise RunClosed(
        f"run {run_id} already ended ({found.outcome}) in {database}; its end "
        f"({outcome}) is not recorded a second time"
    )


class RunClosed(StateError):
    """A run's end was recorded already, with another outcome (see `finish_run_in`)."""
