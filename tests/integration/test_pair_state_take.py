"""Attacks on the lease take that reads a pair's state (worker/run.py, worker/pairstate.py
`PAIR_STATE_COLUMNS` in worker/leasesql.py `LeaseSQL.take`), on SQLite and PostgreSQL
state databases: a state database that fails the take, the read's statement count.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests import kidsapp
from tests.gate_support import OLD, config, place, run
from tests.support import NOW
from worker import run as run_module
from worker.errors import StateError
from worker.leases import pair_tick
from worker.pairstate import PairState, pair_state_of
from worker.retry import RetryPolicy
from worker.state import StateStore
from worker.state.models import leases, runs

BUDGET = 10.0


class FakeTime:
    """The retry policy's clock and sleep: a sleep moves the clock on, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _lost(statement: str) -> Any:
    return sa.exc.OperationalError(statement, {}, Exception("connection lost"))


def test_a_take_the_state_database_keeps_failing_gives_up_within_the_retry_budget(
    tmp_path: Path, sqlite_url: str, store: StateStore
) -> None:
    """The state database loses every take of a lease (a failover that outlasts the
    budget): the run gives up after RETENTION_RETRY_BUDGET_SECONDS of waits in all
    (docs/operations.md, "Retries": a total for the whole operation), not twice that,
    and changes nothing."""
    cfg = config(tmp_path, customers={"kdv-a": {}})
    kidsapp.create(sqlite_url, [(i, 1, OLD) for i in range(1, 4)])
    time = FakeTime()
    store._retry = RetryPolicy(budget_seconds=BUDGET, sleep=time.sleep, clock=time.clock)
    takes: list[str] = []

    def fail(*args: Any) -> None:
        if "INSERT INTO leases" in str(args[2]):
            takes.append(str(args[2]))
            raise _lost(str(args[2]))

    sa.event.listen(store._engine, "before_cursor_execute", fail)
    try:
        with pytest.raises(StateError):
            run(cfg, sqlite_url, store, customer="kdv-a")
    finally:
        sa.event.remove(store._engine, "before_cursor_execute", fail)
    assert takes
    assert sum(time.slept) <= BUDGET, (sum(time.slept), len(takes))
    assert set(kidsapp.rows_by_id(sqlite_url)) == {1, 2, 3}


def test_a_read_the_state_database_refuses_fails_the_run_alone(
    tmp_path: Path, sqlite_url: str, store: StateStore
) -> None:
    """A pair's read that fails for good (not transient: a permission taken away) in the
    statement that takes the lease: the lease is taken again without it and the read apart
    fails the run alone (recorded, its lease ended), at once (no retry), rows untouched."""
    cfg = config(tmp_path, customers={"kdv-a": {}})
    kidsapp.create(sqlite_url, [(i, 1, OLD) for i in range(1, 4)])
    time = FakeTime()
    store._retry = RetryPolicy(budget_seconds=BUDGET, sleep=time.sleep, clock=time.clock)
    reads: list[str] = []

    def fail(*args: Any) -> None:
        text = str(args[2])
        if "FROM holds" in text and "FROM approvals" in text:
            reads.append(text)
            raise sa.exc.ProgrammingError(text, {}, Exception("permission denied"))

    sa.event.listen(store._engine, "before_cursor_execute", fail)
    try:
        reports, _ = run(cfg, sqlite_url, store, customer="kdv-a")
    finally:
        sa.event.remove(store._engine, "before_cursor_execute", fail)
    assert reports[0].outcome == "failed" and "state" in (reports[0].error or "")
    assert time.slept == []
    postgres = store._engine.dialect.name == "postgresql"
    assert ["INSERT INTO leases" in r for r in reads] == ([True, False] if postgres else [False])
    assert set(kidsapp.rows_by_id(sqlite_url)) == {1, 2, 3}
    again, _ = run(cfg, sqlite_url, store, customer="kdv-a")  # the lease was ended
    assert again[0].skipped is None and again[0].changed == 3


def test_a_hold_placed_while_the_take_waits_for_the_lease_row_keeps_every_row(
    tmp_path: Path, sqlite_url: str, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --once` takes a lease done in its tick again, and waits for another transaction
    that holds that row; a customer-wide hold committed meanwhile is not in the take's
    snapshot (taken when its statement started), so its read says no hold. The batches'
    guard reads the holds again: no row changes (PostgreSQL: the read rides in the take)."""
    state = StateStore(pg_url)
    state.migrate()
    cfg = config(tmp_path, customers={"kdv-a": {}})
    kidsapp.create(sqlite_url, [(i, 1, OLD) for i in range(1, 4)])
    ((customer, mapping),) = [(c, p) for c, p in cfg.pairs() if c.customer == "kdv-a"]
    tick = pair_tick(customer, mapping, NOW)
    row = {"customer": "kdv-a", "product": mapping.product, "tick": tick}
    done = NOW - dt.timedelta(hours=1)
    state.write(
        "a run of this tick done by another process",
        lambda c: c.execute(
            leases.insert().values(
                **row,
                holder="other|1",
                token="t",
                taken_at=done,
                expires_at=done,
                done_at=done,
                takeovers=0,
            )
        ),
    )
    read: list[PairState] = []

    def known(values: Any) -> PairState:
        read.append(pair_state_of(values))
        return read[-1]

    monkeypatch.setattr(run_module, "pair_state_of", known)
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as holder:
            holder.execute(
                sa.select(leases)
                .where(*[leases.c[k] == v for k, v in row.items()])
                .with_for_update()
            )
            result: list[Any] = []
            running = threading.Thread(
                target=lambda: result.append(run(cfg, sqlite_url, state, customer="kdv-a"))
            )
            running.start()
            with engine.connect() as watch:
                waiting = sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
                while not watch.execute(waiting).scalar():
                    assert running.is_alive()
                    threading.Event().wait(0.01)
            place(state, customer="kdv-a")
            holder.commit()
            running.join(timeout=60)
    finally:
        engine.dispose()
    ((reports, _seen),) = result
    assert read == [PairState(open_work=False, holds=False, approvals=False)]
    assert reports[0].changed == 0 and reports[0].skipped is None
    assert set(kidsapp.rows_by_id(sqlite_url)) == {1, 2, 3}
    state.close()


@pytest.mark.parametrize("older", [False, True], ids=["taken-over", "fresh-tick"])
def test_a_crashed_runs_work_is_settled_whether_its_lease_is_taken_over_or_not(
    tmp_path: Path, sqlite_url: str, store: StateStore, older: bool
) -> None:
    """A run crashed with its lease (expired, holder on another host) and left a run
    without an end. Its lease of this tick is taken over (the claim: the pair is read
    apart), or a lease of an older tick is dropped and this tick's taken fresh (the read
    rides in the take on PostgreSQL): either way the pair's open work is seen and settled,
    and the pair's state is read by exactly one statement that returned it."""
    cfg = config(tmp_path, customers={"kdv-a": {}})
    kidsapp.create(sqlite_url, [(i, 1, OLD) for i in range(1, 4)])
    ((customer, mapping),) = [(c, p) for c, p in cfg.pairs() if c.customer == "kdv-a"]
    tick = pair_tick(customer, mapping, NOW) - dt.timedelta(days=1 if older else 0)
    gone = NOW - dt.timedelta(days=2)
    store.write(
        "a crashed run and its lease",
        lambda c: (
            c.execute(
                runs.insert().values(
                    run_id="crashed-1",
                    customer="kdv-a",
                    product=mapping.product,
                    started_at=gone,
                    outcome=None,
                    dry_run=False,
                    rows_changed=0,
                )
            ),
            c.execute(
                leases.insert().values(
                    customer="kdv-a",
                    product=mapping.product,
                    tick=tick,
                    holder="elsewhere|1",
                    token="t",
                    taken_at=gone,
                    expires_at=gone,
                    takeovers=0,
                )
            ),
        ),
    )
    sent: list[tuple[str, bool]] = []

    def seen(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM holds" in statement and "FROM approvals" in statement:
            sent.append(("INSERT INTO leases" in statement, cursor.rowcount != 0))

    sa.event.listen(store._engine, "after_cursor_execute", seen)
    try:
        reports, _ = run(cfg, sqlite_url, store, customer="kdv-a")
    finally:
        sa.event.remove(store._engine, "after_cursor_execute", seen)
    assert reports[0].outcome == "succeeded" and reports[0].changed == 3
    outcome = store.read(
        "the crashed run",
        lambda c: c.execute(sa.select(runs.c.outcome).where(runs.c.run_id == "crashed-1")).scalar(),
    )
    assert outcome is not None
    if store._engine.dialect.name != "postgresql":
        assert sent == [(False, True)]
    elif older:  # refused by the older lease, then taken with the read
        assert [take for take, _ in sent] == [True, True]
    else:  # refused (the tick's row), taken over, read apart
        assert [take for take, _ in sent] == [True, False]
