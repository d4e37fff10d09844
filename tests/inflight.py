"""A batch in flight and a session that waits for it, for tests of what is read while a
transaction is open: `Holder` runs a batch on its own thread and stops it in its `prepare`
(where the worker records the batch's intent, before COMMIT); `Beside` runs a question on
another thread and lets the holder go on once that question waits for it (`LockWaits`).

PostgreSQL and MariaDB name their waiters (`pg_stat_activity`, InnoDB's status report); a
thread waits when one of its statements on the database is in the driver and the server
reports a session of that database waiting for a lock. SQLite reports no waiter and has one
writer at a time: a thread waits while a statement of it that takes the write lock
(`BEGIN IMMEDIATE`, a write) is in the driver.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.base import Applied

T = TypeVar("T")
WAIT = 60.0  # seconds; a step that takes this long is a hang, reported as such
POLLS = 6_000  # every 10 ms: a minute at most
_PG_WAITERS = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
)
# Not information_schema.INNODB_TRX: InnoDB refreshes that cache only when it was not read
# for 0.1 s, and tests polling it in parallel kept it stale. Its status report is made afresh.
_INNODB_WAITER = re.compile(r"\nLOCK WAIT [^\n]*\n(?:MariaDB|MySQL) thread id (\d+),")
_SQLITE_WRITES = ("BEGIN IMMEDIATE", "BEGIN EXCLUSIVE", "INSERT", "UPDATE", "DELETE")


class LockWaits:
    """Watches the statements every engine of the process sends to the database at `url`
    (a context manager: from enter to exit)."""

    def __init__(self, url: str) -> None:
        self.url = sa.make_url(url)
        self.kind = self.url.get_backend_name()
        self._in_driver: dict[int, list[str]] = {}  # thread id → statements started, not done
        self._lock = threading.Lock()

    def __enter__(self) -> LockWaits:
        sa.event.listen(Engine, "before_cursor_execute", self._started)
        sa.event.listen(Engine, "after_cursor_execute", self._ended)
        sa.event.listen(Engine, "handle_error", self._failed)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        sa.event.remove(Engine, "before_cursor_execute", self._started)
        sa.event.remove(Engine, "after_cursor_execute", self._ended)
        sa.event.remove(Engine, "handle_error", self._failed)

    def until_waiting(
        self, thread: threading.Thread, *, unless: Callable[[], bool] = lambda: False
    ) -> bool:
        """Poll (bounded) until `thread` waits for a lock (True), or it ended or `unless()`
        holds (False)."""
        checker = sa.create_engine(self.url) if self.kind != "sqlite" else None
        try:
            for _ in range(POLLS):
                if not thread.is_alive() or unless():
                    return False
                if self._waits(thread, checker):
                    return True
                threading.Event().wait(0.01)
        finally:
            if checker is not None:
                checker.dispose()
        raise AssertionError(f"{thread.name} neither waited for a lock nor ended")

    def _waits(self, thread: threading.Thread, checker: Engine | None) -> bool:
        with self._lock:
            running = list(self._in_driver.get(thread.ident or 0, ()))
        if not running:
            return False
        if checker is None:  # SQLite
            return any(s.lstrip().upper().startswith(_SQLITE_WRITES) for s in running)
        with checker.connect() as conn:
            if self.kind == "postgresql":
                return bool(conn.execute(sa.text(_PG_WAITERS)).scalar_one())
            status = str(conn.execute(sa.text("SHOW ENGINE INNODB STATUS")).one()[2])
            waiting = [int(n) for n in _INNODB_WAITER.findall(status)]
            if not waiting:
                return False
            ours = sa.text(
                "SELECT count(*) FROM information_schema.PROCESSLIST "
                "WHERE ID IN :ids AND DB = DATABASE()"
            ).bindparams(sa.bindparam("ids", expanding=True))
            return bool(conn.execute(ours, {"ids": waiting}).scalar_one())

    def _ours(self, conn: sa.Connection) -> bool:
        url = conn.engine.url
        return url.get_backend_name() == self.kind and url.database == self.url.database

    def _started(self, conn: sa.Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if self._ours(conn):
            with self._lock:
                self._in_driver.setdefault(threading.get_ident(), []).append(statement)

    def _ended(self, conn: sa.Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if self._ours(conn):
            self._forget(statement)

    def _failed(self, context: sa.engine.ExceptionContext) -> None:
        if context.connection is not None and self._ours(context.connection):
            self._forget(context.statement or "")

    def _forget(self, statement: str) -> None:
        with self._lock:
            running = self._in_driver.get(threading.get_ident(), [])
            if statement in running:
                running.remove(statement)


class RolledBack(Exception):
    """Raised in the holder's prepare: its transaction rolls back."""


class Holder:
    """A batch on its own thread (`change(prepare)`: a connector's `apply`, `delete_expired`
    …), stopped in its `prepare` until `end`; `applied` is what it prepared."""

    def __init__(self, change: Callable[[Callable[[Applied], None]], Applied]) -> None:
        self.change = change
        self.prepared, self.release = threading.Event(), threading.Event()
        self.roll_back = False
        self.applied: Applied | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="holder")

    def _run(self) -> None:
        def prepare(applied: Applied) -> None:
            self.applied = applied
            self.prepared.set()
            assert self.release.wait(WAIT), "the holder was never released"
            if self.roll_back:
                raise RolledBack

        try:
            self.change(prepare)
        except RolledBack:
            pass
        except BaseException as exc:  # noqa: BLE001  (reported by the test)
            self.error = exc
        finally:
            self.prepared.set()  # a change that never reached its prepare

    def start(self) -> Applied:
        """Start the batch; what it prepared, once it waits in its prepare."""
        self.thread.start()
        assert self.prepared.wait(WAIT), "the holder never reached its prepare"
        assert self.applied is not None, self.error
        return self.applied

    def end(self, *, roll_back: bool = False) -> None:
        """Let the batch commit (or roll back), and wait for it."""
        self.roll_back = roll_back
        self.release.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive() and self.error is None, self.error


class Beside(Generic[T]):
    """`ask()` on its own thread, beside a holder in flight."""

    def __init__(self, ask: Callable[[], T]) -> None:
        self.ask = ask
        self.answer: T | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="asker")

    def _run(self) -> None:
        try:
            self.answer = self.ask()
        except BaseException as exc:  # noqa: BLE001  (reported by the test)
            self.error = exc

    def of(self, holder: Holder, url: str, *, roll_back: bool = False) -> T:
        """Ask while `holder` is in flight on the database at `url`; once the question
        waits for it, let it commit (or roll back). The answer; the question must have
        waited."""
        with LockWaits(url) as locks:
            self.thread.start()
            waited = locks.until_waiting(self.thread)
        holder.end(roll_back=roll_back)
        self.thread.join(WAIT)
        assert self.error is None, self.error
        assert waited, f"the question did not wait for the batch in flight: {self.answer}"
        assert self.answer is not None
        return self.answer
