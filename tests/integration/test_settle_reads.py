"""Settling a pair (worker/reconcile.py) reads the state database once when the pair has
nothing open, and still settles what a crashed run left, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.integration.test_gathered_races import crashed_run, finished_records, pair_a, run_a
from tests.support import NOW, PEPPER
from worker.app import build_runner, subscribe_state
from worker.configload import Config
from worker.events import Event, EventBus
from worker.reconcile import Settled
from worker.state import StateStore


@contextmanager
def statements(engine: sa.Engine) -> Iterator[list[str]]:
    """The statements `engine` runs meanwhile (SQLite's BEGIN not counted)."""
    found: list[str] = []

    def seen(*args: Any) -> None:
        if not str(args[2]).startswith("BEGIN"):
            found.append(str(args[2]))

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        yield found
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


def settle_a(
    config: Config,
    env: dict[str, str],
    store: StateStore,
    before: Callable[[], object] | None = None,
) -> Settled:
    """Settle a × kids as a run of it does before its rules (`before`: as `settle`'s)."""
    bus = EventBus()
    subscribe_state(bus, store, lambda: NOW)
    runner = build_runner(config, env, bus, pepper=PEPPER, clock=lambda: NOW, store=store)
    [(customer, mapping)] = [(c, p) for c, p in config.pairs() if c.customer == "a"]
    assert runner.reconciler is not None
    connector = runner.connect(customer, mapping)
    connector.open()
    try:
        return runner.reconciler.settle(
            connector, customer, mapping, settled_by="settler", before=before
        )
    finally:
        connector.close()


def nothing(_event: Event) -> None:
    pass


def test_a_pair_with_nothing_open_is_settled_with_one_read(tmp_path: Path, state_url: str) -> None:
    """After a finished run nothing is open: one statement, nothing settled."""
    _, env, config = pair_a(tmp_path)
    store = StateStore(state_url)
    try:
        run_a(config, env, store, nothing)
        with statements(store._engine) as seen:
            assert settle_a(config, env, store) == Settled(0, 0, 0)
        assert len(seen) == 1
    finally:
        store.close()


def test_a_crashed_run_is_still_closed(tmp_path: Path, state_url: str) -> None:
    """A run left without an outcome (and without batches) is found and closed once."""
    _, env, config = pair_a(tmp_path)
    store = StateStore(state_url)
    try:
        crashed = crashed_run(store)
        assert settle_a(config, env, store) == Settled(0, 0, 1)
        assert finished_records(store, crashed) == 1
        with statements(store._engine) as seen:
            assert settle_a(config, env, store) == Settled(0, 0, 0)
        assert len(seen) == 1
    finally:
        store.close()
