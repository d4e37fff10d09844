"""The audit trail in the state database: appending after the head, and reading it back.

`AuditLog` is a base of `worker.state.store.StateStore`, which supplies the engine, the
error wrapping (`StateError` naming the database by its masked URL), write transactions,
queued writes (`write_later`, worker/state/gather.py) and the retry budget.

Audit appends are serialised on the `audit_head` row: `SELECT ... FOR UPDATE` on PostgreSQL
(several replicas), a process-wide lock plus `BEGIN IMMEDIATE` on SQLite; a transaction that
appends several records (a run's start and end, gathered) locks and reads the head once and
chains the later ones from the head the previous one left (`held_head`). In a transaction
of the store's own (`StateStore._write`) the records wait in memory and are sent together,
one INSERT and one move of the head, before it commits (worker/state/held.py). The store knows
nothing about hashing: the caller passes a `seal(seq, prev_hash)` that computes the new hash
while the head is locked (see worker/audit.py). Every append is safe to repeat: a record
already in the trail (same run, kind, time and payload) is found and not appended again.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from worker.errors import StateError
from worker.state import gather
from worker.state.gather import Work
from worker.state.held import INSERT_RECORDS, MOVE_HEAD, held, holding, write_held
from worker.state.models import audit_events, audit_head
from worker.state.plumbing import Plumbing
from worker.state.records import AuditEntry, AuditHead, AuditRecord, _aware, utc

Seal = Callable[[int, str], str]
"""Given the new record's seq and the previous hash, return the new record's hash."""

Also = Callable[[Connection, AuditRecord], None]
"""Extra state kept with an audit record, in its transaction (must be safe to repeat)."""

# Built once (worker/state/held.py has the writes).
_LOCK_HEAD = (
    select(audit_head.c.seq, audit_head.c.hash)
    .where(audit_head.c.id == 1)
    .with_for_update()  # SQLite ignores it: BEGIN IMMEDIATE already holds the lock
)
_FIND = select(audit_events).where(
    audit_events.c.run_id == bindparam("find_run_id"),
    audit_events.c.kind == bindparam("find_kind"),
    audit_events.c.at == bindparam("find_at"),
    audit_events.c.payload == bindparam("find_payload"),
)


def _found_by(entry: AuditEntry, at: dt.datetime) -> dict[str, object]:
    return {
        "find_run_id": entry.run_id,
        "find_kind": entry.kind,
        "find_at": at,
        "find_payload": entry.payload,
    }


def held_head(conn: Connection) -> AuditHead | None:
    """The head an append of `conn`'s current transaction left (locked by it), else None.

    Kept with the transaction it belongs to (worker/state/held.py), so it is never taken for
    another transaction's (a rolled-back one, or the next one on the same pooled connection).
    """
    found = held(conn)
    return found.head if found is not None else None


class AuditLog(Plumbing):
    """Appending to the hash-chained audit trail and reading it back (`audit_events`)."""

    _postgres: bool

    @abc.abstractmethod
    def write_later(self, doing: str, work: Work) -> None:
        """Queue `work` for the run's next write transaction (worker/state/gather.py; the
        store's `write_later` has the rest of its options)."""

    def append_audit(self, entry: AuditEntry, seal: Seal, also: Also | None = None) -> AuditRecord:
        """Append one record after the head, atomically with moving the head (and with
        `also`, called in the same transaction with the new record).

        Retried on transient errors; a record whose first attempt did commit (its reply was
        lost) is found by its run, kind, time and payload and returned, not appended twice.
        """
        at = _aware(entry.at, "the audit record's time")
        doing = f"appending {entry.kind} of run {entry.run_id} to the audit trail"
        return self._retrying(self._appending(doing, entry, at, seal, also))

    def append_audit_later(self, entry: AuditEntry, seal: Seal, also: Also | None = None) -> None:
        """`append_audit`, queued with `write_later`: for a record that guards no product
        change (run started, run finished). Its seq and hash are taken when it is written,
        in queue order, so the chain stays in the order the run published its events.
        Another run's record (a run this one closes) is written at once, after what waits."""
        gathered = gather.current()
        if gathered is not None and gathered.run_id not in (None, entry.run_id):
            self.append_audit(entry, seal, also)
            return
        at = _aware(entry.at, "the audit record's time")

        def work(conn: Connection, retried: bool) -> None:
            record = self._append(conn, entry, at, seal, retried=retried)
            if also is not None:
                also(conn, record)

        self.write_later(f"{entry.kind} of run {entry.run_id}", work)

    def _appending(
        self, doing: str, entry: AuditEntry, at: dt.datetime, seal: Seal, also: Also | None
    ) -> Callable[[], AuditRecord]:
        """One attempt of `append_audit` (for `_retrying`); later attempts look first for
        a record an earlier one committed."""
        attempts = 0

        def write() -> AuditRecord:
            nonlocal attempts
            attempts += 1
            with self._write(doing) as conn:
                # Only a retry can find its own earlier attempt committed: the first one
                # skips that lookup (a query per record).
                record = self._append(conn, entry, at, seal, retried=attempts > 1)
                if also is not None:
                    also(conn, record)
                return record

        return write

    def _append(
        self,
        conn: Connection,
        entry: AuditEntry,
        at: dt.datetime,
        seal: Seal,
        *,
        retried: bool = True,
    ) -> AuditRecord:
        # The head is locked once per transaction: a later append of the same transaction
        # (outside a SAVEPOINT) starts from the head the last one left.
        outer = conn.get_nested_transaction() is None
        mine = holding(conn)
        head = mine.head if outer else None
        if head is None:
            row = conn.execute(_LOCK_HEAD).one_or_none()
            if row is None:
                raise StateError(
                    f"the audit head row is missing in {self.url}; run `retention-worker "
                    "migrate` (if the trail has events, this is tampering: run "
                    "`retention-worker audit verify`)"
                )
            head = AuditHead(int(row.seq), str(row.hash))
        if retried:
            write_held(conn)  # the lookup must see the records this transaction holds
            same = conn.execute(_FIND, _found_by(entry, at)).mappings().first()
            if same is not None:  # an earlier attempt committed; its reply was lost
                return AuditRecord(**{**same, "seq": int(same["seq"]), "at": utc(same["at"])})
        seq, prev_hash = head.seq + 1, head.hash
        hash_ = seal(seq, prev_hash)
        row_: dict[str, Any] = {
            "seq": seq,
            "at": at,
            "run_id": entry.run_id,
            "kind": entry.kind,
            "customer": entry.customer,
            "product": entry.product,
            "rule": entry.rule,
            "action": entry.action,
            "payload": entry.payload,
            "prev_hash": prev_hash,
            "hash": hash_,
        }
        record = AuditRecord(**row_)
        if outer and mine.deferring:  # sent with the others before the transaction ends
            mine.records.append(row_)
            mine.head = AuditHead(seq, hash_)
            return record
        conn.execute(INSERT_RECORDS, row_)
        conn.execute(MOVE_HEAD, {"new_seq": seq, "new_hash": hash_})
        # In a SAVEPOINT, which may roll it back, the next append reads the head again.
        mine.head = AuditHead(seq, hash_) if outer else None
        return record

    @contextmanager
    def audit_snapshot(
        self, batch_size: int = 1000
    ) -> Iterator[tuple[AuditHead | None, Iterator[AuditRecord]]]:
        """The head and the records in seq order, both from one consistent snapshot.

        Records are streamed (server-side cursor on PostgreSQL) `batch_size` at a time; the
        iterator is valid only inside the `with` block.
        """
        with self._errors("opening the audit trail"):
            conn = self._engine.connect()
        try:
            with self._errors("reading the audit head"):
                if self._postgres:
                    conn = conn.execution_options(
                        isolation_level="REPEATABLE READ", postgresql_readonly=True
                    )
                conn.begin()
                row = conn.execute(
                    select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
                ).one_or_none()
            head = AuditHead(int(row.seq), str(row.hash)) if row is not None else None
            yield head, self._stream(conn, batch_size)
        finally:
            with self._errors("closing the audit trail"):
                conn.close()

    def _stream(self, conn: Connection, batch_size: int) -> Iterator[AuditRecord]:
        query = select(audit_events).order_by(audit_events.c.seq)
        with self._errors("reading the audit trail"):
            result = conn.execution_options(yield_per=batch_size).execute(query).mappings()
            for r in result:
                yield AuditRecord(**{**r, "seq": int(r["seq"]), "at": utc(r["at"])})

    def audit_count(self) -> int:
        with self._errors("counting audit records"), self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(audit_events)).scalar_one())
