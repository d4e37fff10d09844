"""StateStore: the worker's own database (SQLite for a laptop, PostgreSQL in production).

Every driver error leaves this module as a StateError whose message names the database by
its URL with the password masked (`connectors.masking.safe_url`: also `?password=`), the
driver's error reduced to class, code and names (`connectors.redact.describe`), and whose
`__cause__` is the original error. Transient errors
(a lost connection, a failover, a deadlock) are retried within the retry budget
(`worker.retry.RetryPolicy`, RETENTION_RETRY_BUDGET_SECONDS); every write is safe to repeat,
because a write whose commit was acknowledged but whose reply was lost must not be done twice:
a run's start is inserted only once, and an audit record already in the trail (same run, kind,
time and payload) is not appended again.

Every session is bounded, so a locked audit table or a silent server fails the write instead
of hanging the daemon (`worker.state.bounds`): on PostgreSQL a lock and a statement timeout,
and on both kinds the client-side bounds of `connectors.reach`, from `timeouts`
(RETENTION_LOCK_TIMEOUT_SECONDS, RETENTION_STATEMENT_TIMEOUT_SECONDS); a migration alone runs
without the server-side limits. A product change whose record could not be written is
settled by reconciliation (worker/reconcile.py) on the next start or run.

A run's bookkeeping may wait for its next write transaction (`write_later`,
`worker.state.gather`). Appending to the audit trail and reading it back is in
`worker.state.auditlog` (the base class `AuditLog`), recording runs and reading them back in
`worker.state.runlog` (`RunLog`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from connectors.base import Timeouts
from connectors.errors import is_transient
from connectors.masking import safe_url
from connectors.pooling import ping_when_idle
from connectors.reach import client_options
from connectors.redact import describe
from worker.errors import StateError
from worker.retry import RetryPolicy
from worker.state import gather
from worker.state.auditlog import Also, AuditLog, Seal
from worker.state.bounds import bound_sessions, unbounded
from worker.state.gather import Work
from worker.state.held import hold, listen, write_held
from worker.state.records import utc
from worker.state.runlog import OUTCOMES, RunLog

__all__ = ["MIGRATIONS", "OUTCOMES", "Also", "Seal", "StateStore", "utc"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATE_LOCK_KEY = 0x52_45_54_45_4E_54  # pg_advisory_xact_lock key: ASCII "RETENT"
_SQLITE_WRITE_LOCK = threading.Lock()  # one SQLite writer per process; the file lock does the rest
_BEGIN_OPTION = "retention_sqlite_begin"


T = TypeVar("T")
log = structlog.get_logger("worker.state")


def _describe(exc: BaseException) -> str:
    """The error as `connectors.redact.describe` reduces it: class, SQLSTATE or error
    number and names, never the driver's free text (or the SQL and its parameters)."""
    return describe(exc)


class StateStore(RunLog, AuditLog):
    """The worker's state database: runs, the audit trail, and its schema migrations."""

    def __init__(
        self, url: str, *, retry: RetryPolicy | None = None, timeouts: Timeouts | None = None
    ) -> None:
        self._retry = retry if retry is not None else RetryPolicy()
        self._timeouts = timeouts or Timeouts()
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):
            # `from None`: the parser's message repeats the whole URL, password included.
            raise StateError(
                "the state database URL is not valid; expected e.g. sqlite:///path/state.db "
                "or postgresql+psycopg://user:password@host:5432/db"
            ) from None
        self.url = safe_url(parsed)
        self._sqlite = parsed.get_backend_name() == "sqlite"
        self._postgres = parsed.get_backend_name() == "postgresql"
        try:
            self._engine = self._create_engine(parsed)
        except (NoSuchModuleError, ImportError, OSError) as exc:
            raise StateError(f"cannot open the state database {self.url}: {exc}") from exc

    def _create_engine(self, url: URL) -> Engine:
        engine = self._new_engine(url)
        listen(engine)  # what a transaction holds back is written before a SAVEPOINT
        return engine

    def _new_engine(self, url: URL) -> Engine:
        if not self._sqlite:
            engine = create_engine(url, connect_args=client_options(url, self._timeouts))
            ping_when_idle(engine)  # not pool_pre_ping: a round trip per transaction
            if self._postgres:
                bound_sessions(engine, self._timeouts)
            return engine
        database = url.database or ""
        if database in ("", ":memory:"):
            # One shared connection: for single-threaded tests only.
            engine = create_engine(
                url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args=client_options(url, self._timeouts))
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine

    # -- plumbing ------------------------------------------------------------------------

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except StateError:
            raise
        except (SQLAlchemyError, CommandError, OSError) as exc:
            raise StateError(
                f"the state database {self.url} failed while {doing}: {_describe(exc)}",
                transient=isinstance(exc, SQLAlchemyError) and is_transient(exc),
            ) from exc

    def _retrying(self, fn: Callable[[], T]) -> T:
        """Run `fn` (one whole transaction), again on transient errors within the budget."""

        def on_retry(attempt: int, wait: float, error: BaseException) -> None:
            log.warning(
                "state.retry", attempt=attempt, wait_seconds=round(wait, 2), error=str(error)
            )

        return self._retry.call(
            fn,
            transient=lambda exc: isinstance(exc, StateError) and exc.transient,
            on_retry=on_retry,
        )

    def write(self, doing: str, work: Callable[[Connection], T]) -> T:
        """Run `work` in one write transaction, again on transient errors (it must be safe to
        repeat: a lost reply after COMMIT means the first attempt may have committed)."""

        def attempt() -> T:
            with self._write(doing) as conn:
                return work(conn)

        return self._retrying(attempt)

    def read(self, doing: str, work: Callable[[Connection], T]) -> T:
        """Run `work` on a connection for reading, again on transient errors.

        On PostgreSQL the connection is in autocommit: no BEGIN and ROLLBACK around the
        reads (two of the three round trips of a one-query read). Each statement sees the
        data committed when it starts, as it would in a READ COMMITTED transaction; `work`
        must not write (use `write`) nor rely on one snapshot for several statements (use
        `audit_snapshot`).
        """

        def attempt() -> T:
            with self._errors(doing), self._engine.connect() as conn:
                if self._postgres:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                return work(conn)

        return self._retrying(attempt)

    def write_later(
        self,
        doing: str,
        work: Work,
        *,
        optional: bool = False,
        droppable: bool = False,
        committed: Callable[[], None] | None = None,
    ) -> None:
        """Queue `work` for the next write transaction of this context's `gathering()`
        (worker/state/gather.py); without one, write it now (`work(conn, retried)`).

        Only for records that guard no product change (a run's bookkeeping). `doing` names
        what is recorded ("run.started of run …"). A queued write's failure surfaces at
        the write that carries it, or at the flush, as StateError; an `optional` one's is
        logged and left out (the flush writes the rest again without it; another carrier
        rolls back its SAVEPOINT: `gather.Pending`). A `droppable` one's failure fails
        its transaction and the flush writes the rest again without it: queue it only after
        the run's last other write, before `flush` (a write that carried it would fail with
        it); written at once, its failure raises. `committed()` is called once the work's
        transaction committed (it must not raise)."""
        gathered = gather.current()
        if gathered is None:
            tries = 0

            def now(conn: Connection) -> None:
                nonlocal tries
                tries += 1
                work(conn, tries > 1)

            self.write(doing, now)
            if committed is not None:
                committed()
            return
        gathered.add(
            self, gather.Pending(doing, work, optional, droppable=droppable, committed=committed)
        )

    @contextmanager
    def _write(self, doing: str) -> Iterator[Connection]:
        """A write transaction; on SQLite serialised in-process and taken with BEGIN IMMEDIATE.
        Work queued with `write_later` in this context runs first, in the same transaction.
        Audit records and runs' starts are held back and sent together before it commits
        (worker/state/held.py)."""
        gathered = gather.current()
        carried = gathered.taken(self) if gathered is not None else []
        for pending in carried:
            pending.failed = None  # an earlier attempt's failure is not this one's
        flushing = gathered is not None and gathered.flushing
        try:
            with self._begin(doing) as conn:
                hold(conn)  # audit records and a run's start wait for `write_held`
                for pending in carried:
                    pending.run(conn, flushing=flushing)
                if flushing:  # a refusal is the carried work's (Gathering.flush)
                    write_held(conn)
                yield conn
                write_held(conn)
        except BaseException:
            for pending in carried:
                pending.tried = True
            raise
        if gathered is not None and carried:
            gathered.done(self, carried)

    @contextmanager
    def _begin(self, doing: str) -> Iterator[Connection]:
        with self._errors(doing):
            if not self._sqlite:
                with self._engine.begin() as conn:
                    yield conn
                return
            with _SQLITE_WRITE_LOCK, self._engine.connect() as conn:
                conn = conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
                with conn.begin():
                    yield conn

    def _alembic_config(self, connection: Connection | None = None) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        if connection is not None:
            config.attributes["connection"] = connection
        return config

    # -- schema --------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest revision. Idempotent; safe on every start."""

        def write() -> None:
            with self._write("migrating the schema") as conn:
                if self._postgres:
                    # A migration may rewrite a large trail and waits for another replica's.
                    unbounded(conn)
                    # Replicas starting together: the second waits, then finds nothing to do.
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_LOCK_KEY}
                    )
                command.upgrade(self._alembic_config(conn), "head")

        self._retrying(write)

    def check(self) -> None:
        """Raise StateError unless the schema is exactly at the revision this worker needs."""
        scripts = ScriptDirectory.from_config(self._alembic_config())
        wanted = set(scripts.get_heads())

        def read() -> set[str]:
            with self._errors("reading the schema revision"), self._engine.connect() as conn:
                return set(MigrationContext.configure(conn).get_current_heads())

        current = self._retrying(read)
        if current == wanted:
            return
        if not current:
            raise StateError(
                f"the state database {self.url} has no schema yet; run `retention-worker migrate`"
            )
        known = {script.revision for script in scripts.walk_revisions()}
        if current - known:
            raise StateError(
                f"the state database {self.url} is at revision {', '.join(sorted(current))}, "
                "which this worker does not know (migrated by a newer version?); "
                "upgrade the worker"
            )
        raise StateError(
            f"the state database {self.url} is at revision {', '.join(sorted(current))}, "
            f"this worker needs {', '.join(sorted(wanted))}; run `retention-worker migrate`"
        )

    def ping(self) -> None:
        """Raise StateError unless the database answers."""
        with self._errors("answering a ping"), self._engine.connect() as conn:
            conn.execute(select(1)).scalar_one()

    def close(self) -> None:
        """Close every pooled connection. The store may be used again afterwards."""
        self._engine.dispose()


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the sqlite3 module (it would BEGIN only before DML, so a
    # read-then-write could race); `_sqlite_begin` emits BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")  # readers (verify) never block appenders
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")
