"""A run's rule history (worker/gate.py, HistoryRecorder) is written with one INSERT on its
first attempt, without reading the table first; a retry whose first attempt committed (its
reply lost) finds those rows and adds none. SQLite and PostgreSQL state databases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support import NOW
from worker.events import Outcome, RuleEvaluated, RunFinished
from worker.gate import HistoryRecorder
from worker.state import StateStore
from worker.state.gather import Work

RULES = ("kids.child.left", "kids.parent.gone")


def evaluated(rule: str, eligible: int) -> RuleEvaluated:
    return RuleEvaluated(
        run_id="r1",
        customer="a",
        product="kids",
        rule=rule,
        action="delete",
        table="child",
        eligible=eligible,
        lag_seconds=0.0,
        cutoff=dt.date(2024, 1, 1),
        period="P1Y",
        source="catalogue",
    )


def finished() -> RunFinished:
    processed = {(RULES[0], "delete"): {"child": 2}}
    return RunFinished("r1", "a", "kids", Outcome.SUCCEEDED, NOW, 0.1, processed)


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    found = StateStore(state_url)
    yield found
    found.close()


def queued_work(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> Work:
    """The write a run's end queues for its rule history (captured, not run)."""
    works: list[Work] = []
    monkeypatch.setattr(store, "write_later", lambda _doing, work, **_kw: works.append(work))
    recorder = HistoryRecorder(store)
    for i, rule in enumerate(RULES):
        recorder(evaluated(rule, 3 + i))
    recorder(finished())
    [work] = works
    return work


def history(store: StateStore) -> list[tuple[Any, ...]]:
    with store._engine.connect() as conn:
        query = "SELECT rule, eligible, changed FROM rule_history ORDER BY rule"
        return [tuple(r) for r in conn.execute(sa.text(query))]


def test_a_first_write_is_one_insert_and_a_retry_adds_nothing(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = queued_work(store, monkeypatch)
    statements: list[str] = []

    def seen(*args: Any) -> None:
        if not str(args[2]).startswith("BEGIN"):
            statements.append(str(args[2]).split()[0])

    sa.event.listen(store._engine, "before_cursor_execute", seen)
    try:
        store.write("the rule history", lambda conn: work(conn, False))
    finally:
        sa.event.remove(store._engine, "before_cursor_execute", seen)
    assert statements == ["INSERT"]
    expected = [(RULES[0], 3, 2), (RULES[1], 4, 0)]
    assert history(store) == expected
    store.write("the rule history again", lambda conn: work(conn, True))
    assert history(store) == expected
