"""What a write transaction holds back until its end: audit records and a run's start.

A run's bookkeeping rides in one transaction (worker/state/gather.py). Appended one by one,
its two audit records cost an INSERT and an UPDATE of the head each, and its row in `runs`
an INSERT at its start and an UPDATE at its end. Held back instead (`Held`), the records go
in one INSERT and the head moves once (`write_held`), and a run whose start is still held
when its end is recorded gets one INSERT carrying both (worker/state/runlog.py).

Only a transaction of `StateStore._write` holds anything back (`hold`). It sends what it
holds before its body's COMMIT; in `Gathering.flush` already when the carried work has run
(a refusal is then that required work's, raised at once, not a COMMIT failure to guess at);
before any SAVEPOINT (an engine event: a SAVEPOINT rolls back only what was done inside it);
and before a retried append looks for its earlier attempt's record. Elsewhere every write
is sent at once, as it always was. The rows are those appending record by record writes:
the same seq, prev_hash and hash (the head, locked once, is chained in memory), in seq
order, and nothing in the transaction reads those tables before they are sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, RootTransaction, bindparam, event
from sqlalchemy.dialects import postgresql, sqlite

from worker.state.models import audit_events, audit_head, runs
from worker.state.records import AuditHead

_KEY = "retention_state_held"

# Built once: each call would otherwise build and hash a new statement.
MOVE_HEAD = (
    audit_head.update()
    .where(audit_head.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)
INSERT_RECORDS = audit_events.insert()
INSERT_RUN = {
    "postgresql": postgresql.insert(runs).on_conflict_do_nothing(index_elements=[runs.c.run_id]),
    "sqlite": sqlite.insert(runs).on_conflict_do_nothing(index_elements=[runs.c.run_id]),
}


@dataclass
class Held:
    """One transaction's state kept in memory: the audit head it locked (as its appends
    left it), and, when `deferring`, the records and run starts not sent yet."""

    transaction: RootTransaction
    deferring: bool = False
    head: AuditHead | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    starts: dict[str, dict[str, Any]] = field(default_factory=dict)  # rows of `runs`, by run


def held(conn: Connection) -> Held | None:
    """What `conn`'s current transaction holds, if anything (never another transaction's:
    a rolled-back one, or the previous one on the same pooled connection)."""
    found: Held | None = conn.info.get(_KEY)
    if found is None:
        return None
    current = conn.get_transaction()
    if found.transaction is not current or current is None or not current.is_active:
        return None
    return found


def holding(conn: Connection) -> Held:
    """`held(conn)`, made (not deferring) when the transaction holds nothing yet."""
    found = held(conn)
    if found is None:
        transaction = conn.get_transaction()
        if transaction is None:
            raise RuntimeError("only a transaction holds records back")
        found = Held(transaction)
        conn.info[_KEY] = found
    return found


def hold(conn: Connection) -> None:
    """Let `conn`'s transaction hold records and run starts back (`StateStore._write`,
    which then calls `write_held` before its COMMIT)."""
    holding(conn).deferring = True


def write_held(conn: Connection) -> None:
    """Send what `conn`'s transaction holds back: the runs' starts, the audit records (one
    statement) and the head they left (one)."""
    found = held(conn)
    if found is None:
        return
    if found.starts:
        conn.execute(INSERT_RUN[conn.dialect.name], list(found.starts.values()))
        found.starts.clear()
    head = found.head  # the last held record's
    if found.records and head is not None:
        conn.execute(INSERT_RECORDS, found.records)
        found.records.clear()
        conn.execute(MOVE_HEAD, {"new_seq": head.seq, "new_hash": head.hash})


def _before_savepoint(conn: Connection, _name: str | None) -> None:
    write_held(conn)  # what a SAVEPOINT rolls back must be only what was done inside it


def listen(engine: Engine) -> None:
    """Write what a transaction holds before each SAVEPOINT on `engine`'s connections."""
    event.listen(engine, "savepoint", _before_savepoint)
