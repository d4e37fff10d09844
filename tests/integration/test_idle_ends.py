"""Idle runs' last records written together (worker/idleends.py), on SQLite and PostgreSQL
state, a SQLite product of 7 customers of which one (kdv-4) has rows due:

- a tick whose idle runs' records are written together records exactly what the same tick
  records run by run (each run's records in order, its outcome, history, status, leases done),
  in fewer transactions and with fewer checkpoints, the last of which covers the head;
- a waiting run keeps its lease, not done, until its records are written;
- the runs that wait are written after a run that wrote its own (kdv-4);
- a run whose records the joint transaction cannot take fails alone; the others are written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from tests import kidsapp
from tests.integration.test_run_end_folded import Commits, query
from tests.support import NOW, PEPPER
from worker import trailrows
from worker.app import build_runner, run_pairs, subscribe_state
from worker.configload import Config, load_config
from worker.errors import StateError
from worker.events import Event, EventBus, Outcome, RunFinished
from worker.run import Runner
from worker.runreport import RunReport
from worker.state import StateStore
from worker.verify import verify

CUSTOMERS = [f"kdv-{i}" for i in range(1, 8)]
BUSY = "kdv-4"
OLD = dt.date(2023, 1, 1)
RECENT = dt.date(2026, 11, 20)


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    found = StateStore(state_url)
    yield found
    found.close()


def _config(tmp_path: Path) -> Config:
    config = load_config(
        kidsapp.write_config(
            tmp_path / "config",
            customers={name: {"tenant": i} for i, name in enumerate(CUSTOMERS, 1)},
        )
    )
    config.raise_for_problems()
    return config


def _product(tmp_path: Path, name: str) -> str:
    """Two recent rows per customer; kdv-4 also has two expired ones."""
    url = f"sqlite:///{tmp_path / name}"
    rows = [(t * 10 + i, t, RECENT) for t in range(1, 8) for i in range(2)]
    kidsapp.create(url, [*rows, (48, 4, OLD), (49, 4, OLD)])
    return url


def _runner(config: Config, url: str, store: StateStore, *also: Any) -> Runner:
    bus = EventBus()
    subscribe_state(bus, store, lambda: NOW)
    for subscriber in also:
        bus.subscribe(subscriber)
    return build_runner(
        config, {kidsapp.URL_ENV: url}, bus, pepper=PEPPER, clock=lambda: NOW, store=store
    )


def _records(store: StateStore) -> list[tuple[str, str, str | None]]:
    """(customer, kind, rule) of every record, in the trail's order."""
    with store.audit_snapshot() as (_head, records):
        return [(r.customer, r.kind, r.rule) for r in records]


def _per_customer(store: StateStore) -> dict[str, list[tuple[str, str | None]]]:
    found: dict[str, list[tuple[str, str | None]]] = {}
    for customer, kind, rule in _records(store):
        found.setdefault(customer, []).append((kind, rule))
    return found


def _state(store: StateStore) -> dict[str, Any]:
    """What the tick left in the state database, without run ids and times."""
    return {
        "runs": sorted(query(store, "SELECT customer, outcome, rows_changed FROM runs")),
        "history": sorted(
            query(store, "SELECT customer, rule, eligible, changed FROM rule_history")
        ),
        "status": sorted(query(store, "SELECT customer, rule, eligible FROM rule_status")),
        "pairs": sorted(query(store, "SELECT customer, connector_up FROM pair_status")),
        "leases": sorted(
            (r.customer, r.done_at is not None)
            for r in query(store, "SELECT customer, done_at FROM leases")
        ),
    }


def _second_store(tmp_path: Path, store: StateStore) -> StateStore:
    """A fresh state database of the same kind as `store`."""
    if store._engine.dialect.name == "sqlite":
        other = StateStore(f"sqlite:///{tmp_path / 'alone-state.db'}")
    else:
        url = store._engine.url
        name = f"{url.database}_alone"
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        other = StateStore(url.set(database=name).render_as_string(hide_password=False))
    other.migrate()
    return other


def test_idle_runs_written_together_record_what_runs_written_alone_record(
    tmp_path: Path, store: StateStore
) -> None:
    config = _config(tmp_path)
    together_url, alone_url = _product(tmp_path, "together.db"), _product(tmp_path, "alone.db")
    with Commits(store._engine) as together_commits:
        reports = run_pairs(
            _runner(config, together_url, store), config.pairs(), NOW, dry_run=False
        )
    alone_store = _second_store(tmp_path, store)
    try:
        runner = _runner(config, alone_url, alone_store)
        assert runner.idle_ends is None  # outside run_pairs: each run writes its own
        with Commits(alone_store._engine) as alone_commits:
            alone = [runner.run(c, p, NOW, dry_run=False) for c, p in config.pairs()]
        assert [(r.customer, r.outcome) for r in reports] == [
            (r.customer, r.outcome) for r in alone
        ]
        assert all(r.outcome is Outcome.SUCCEEDED for r in reports), [r.error for r in reports]
        assert _per_customer(store) == _per_customer(alone_store)
        assert _state(store) == _state(alone_store)
        assert kidsapp.rows_by_id(together_url) == kidsapp.rows_by_id(alone_url)
        # 6 idle runs: kdv-1 to 3 written together after kdv-4, kdv-5 to 7 at the end: two
        # transactions of records instead of 6, two checkpoints instead of 6.
        assert together_commits.count == alone_commits.count - 4
        checkpoints = query(store, "SELECT seq FROM checkpoints ORDER BY seq")
        assert len(checkpoints) == len(query(alone_store, "SELECT seq FROM checkpoints")) - 4
        [(head,)] = query(store, "SELECT seq FROM audit_head")
        assert checkpoints[-1].seq == head
        for state in (store, alone_store):
            found = verify(state)
            assert found.ok and not found.open_runs and not found.unsettled, found
    finally:
        alone_store.close()
        _drop_second_store(alone_store)


def _drop_second_store(other: StateStore) -> None:
    """Drop the PostgreSQL database `_second_store` made (SQLite's file goes with tmp_path)."""
    url = other._engine.url
    if other._engine.dialect.name == "sqlite":
        return
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def test_a_waiting_run_keeps_its_lease_until_its_records_are_written(
    tmp_path: Path, store: StateStore
) -> None:
    config = _config(tmp_path)
    seen: dict[str, Any] = {}

    def at_the_last_end(event: Event) -> None:
        if isinstance(event, RunFinished) and event.customer == CUSTOMERS[-1]:
            seen["runs"] = {r.customer for r in query(store, "SELECT customer FROM runs")}
            seen["leases"] = {
                r.customer: r.done_at for r in query(store, "SELECT customer, done_at FROM leases")
            }

    runner = _runner(config, _product(tmp_path, "p.db"), store, at_the_last_end)
    reports = run_pairs(runner, config.pairs(), NOW, dry_run=False)
    assert all(r.outcome is Outcome.SUCCEEDED for r in reports), [r.error for r in reports]
    # While kdv-7 ended, kdv-5 and kdv-6 waited: leases held, not done; nothing recorded.
    assert seen["runs"] == set(CUSTOMERS[:4])
    waiting = {c: done for c, done in seen["leases"].items() if c in ("kdv-5", "kdv-6")}
    assert waiting == {"kdv-5": None, "kdv-6": None}
    assert _state(store)["leases"] == [(c, True) for c in CUSTOMERS]
    # kdv-1 to 3 waited for kdv-4, which wrote its own records (its batch's intent).
    started = [c for c, kind, _ in _records(store) if kind == "run.started"]
    assert started == [BUSY, "kdv-1", "kdv-2", "kdv-3", "kdv-5", "kdv-6", "kdv-7"]


def test_a_run_whose_records_are_refused_fails_alone(
    tmp_path: Path, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    real = trailrows.finish_run_in
    order: list[str] = []

    def refusing(conn: Any, run_id: str, *args: Any) -> None:
        if run_id not in order:
            order.append(run_id)
        if order.index(run_id) == 5:  # kdv-6: the second of the last three waiting runs
            raise StateError("refused by the test", transient=False)
        real(conn, run_id, *args)

    monkeypatch.setattr(trailrows, "finish_run_in", refusing)
    runner = _runner(config, _product(tmp_path, "p.db"), store)
    with capture_logs() as logs:
        reports = run_pairs(runner, config.pairs(), NOW, dry_run=False)
    outcomes = {r.customer: r.outcome for r in reports}
    assert outcomes == {c: Outcome.FAILED if c == "kdv-6" else Outcome.SUCCEEDED for c in CUSTOMERS}
    [failed] = [r for r in reports if r.customer == "kdv-6"]
    assert "refused by the test" in (failed.error or "")
    assert [e["runs"] for e in logs if e["event"] == "state.joint_end_failed"] == [3]
    recorded = {c for c, kind, _ in _records(store) if kind == "run.finished"}
    assert recorded == set(CUSTOMERS) - {"kdv-6"}
    assert _recorded_ok(reports, store)


def _recorded_ok(reports: list[RunReport], store: StateStore) -> bool:
    """Every run the trail ended is in `runs` with that outcome, and the chain verifies."""
    ended = {r.run_id: r.outcome for r in query(store, "SELECT run_id, outcome FROM runs")}
    wanted = {r.run_id: str(r.outcome) for r in reports if r.outcome is Outcome.SUCCEEDED}
    found = verify(store)
    return ended == wanted and found.ok
