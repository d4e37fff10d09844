"""The rows a run's status leaves (worker/status.py `StatusRecorder`), on SQLite and PostgreSQL
state: written with upserts, so a complete run's end sends 3 statements instead of 4 (DELETE
and INSERT for each table), and the rows are the same as before:

- a complete run's rules replace the pair's (a rule no longer listed is dropped), with every
  figure and the time of the run's end; other pairs are untouched;
- an incomplete run replaces the figures of the rules it lists and keeps the others;
- a complete run that lists no rule leaves none; the connector state is replaced.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from worker.events import ConnectorStatus, Outcome, RuleEvaluated, RunFinished, RunStarted
from worker.state import StateStore
from worker.state.models import pair_status, rule_status
from worker.status import StatusRecorder

T1 = dt.datetime(2027, 1, 10, 1, 0, tzinfo=dt.UTC)
T2 = dt.datetime(2027, 1, 11, 1, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    found = StateStore(state_url)
    yield found
    found.close()


def run(
    recorder: StatusRecorder,
    run_id: str,
    at: dt.datetime,
    rules: dict[str, tuple[int, float, int]],
    *,
    outcome: Outcome = Outcome.SUCCEEDED,
    up: bool | None = True,
    customer: str = "a",
) -> None:
    """One run's events: its rules' (eligible, lag seconds, held), connector state, end."""
    recorder(RunStarted(run_id, customer, "kidsapp", at))
    if up is not None:
        recorder(ConnectorStatus(customer, "kidsapp", up))
    for rule, (eligible, lag, held) in rules.items():
        recorder(
            RuleEvaluated(
                run_id,
                customer,
                "kidsapp",
                rule,
                "delete",
                "t",
                eligible,
                lag,
                at.date(),
                "P1Y",
                "src",
                held=held,
            )
        )
    recorder(RunFinished(run_id, customer, "kidsapp", outcome, at, 1.0))


def rules(store: StateStore) -> dict[tuple[str, str], tuple[Any, ...]]:
    def read(conn: sa.Connection) -> dict[tuple[str, str], tuple[Any, ...]]:
        found = {}
        for r in conn.execute(sa.select(rule_status)):
            at = (
                r.updated_at.replace(tzinfo=dt.UTC) if r.updated_at.tzinfo is None else r.updated_at
            )
            found[(r.customer, r.rule)] = (r.action, r.eligible, r.lag_seconds, r.held, at)
        return found

    return store.read("reading rule status", read)


def pairs(store: StateStore) -> dict[str, tuple[bool, dt.datetime]]:
    def read(conn: sa.Connection) -> dict[str, tuple[bool, dt.datetime]]:
        return {
            r.customer: (
                bool(r.connector_up),
                r.updated_at.replace(tzinfo=dt.UTC)
                if r.updated_at.tzinfo is None
                else r.updated_at,
            )
            for r in conn.execute(sa.select(pair_status))
        }

    return store.read("reading pair status", read)


class Statements:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.sql: list[str] = []

    def _note(self, _conn: Any, _cur: Any, sql: str, *_a: Any) -> None:
        verb = sql.split()[0].upper()
        if verb not in ("BEGIN", "COMMIT", "ROLLBACK"):
            self.sql.append(verb)

    def __enter__(self) -> list[str]:
        event.listen(self.engine, "before_cursor_execute", self._note)
        return self.sql

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._note)


def test_a_complete_run_replaces_its_pairs_rules_in_fewer_statements(store: StateStore) -> None:
    recorder = StatusRecorder(store)
    run(recorder, "r0", T1, {"x": (9, 9.0, 9)}, customer="b", up=False)
    run(recorder, "r1", T1, {"old": (1, 1.0, 0), "kept": (2, 2.0, 1)}, up=False)
    with Statements(store._engine) as sql:
        run(recorder, "r2", T2, {"kept": (5, 50.5, 0), "new": (7, 70.0, 3)})
    # Before: DELETE, INSERT for the rules; DELETE, INSERT for the pair.
    assert sql == ["DELETE", "INSERT", "INSERT"]
    assert rules(store) == {
        ("b", "x"): ("delete", 9, 9.0, 9, T1),
        ("a", "kept"): ("delete", 5, 50.5, 0, T2),
        ("a", "new"): ("delete", 7, 70.0, 3, T2),
    }
    assert pairs(store) == {"b": (False, T1), "a": (True, T2)}


def test_an_incomplete_run_keeps_the_rules_it_did_not_list(store: StateStore) -> None:
    recorder = StatusRecorder(store)
    run(recorder, "r1", T1, {"first": (1, 1.0, 0), "second": (2, 2.0, 1)})
    run(recorder, "r2", T2, {"first": (3, 3.0, 3)}, outcome=Outcome.INTERRUPTED, up=False)
    assert rules(store) == {
        ("a", "first"): ("delete", 3, 3.0, 3, T2),
        ("a", "second"): ("delete", 2, 2.0, 1, T1),
    }
    assert pairs(store) == {"a": (False, T2)}
    run(recorder, "r3", T2, {}, outcome=Outcome.FAILED, up=None)  # lists nothing: no change
    assert len(rules(store)) == 2


def test_a_complete_run_without_rules_leaves_none(store: StateStore) -> None:
    recorder = StatusRecorder(store)
    run(recorder, "r1", T1, {"first": (1, 1.0, 0)})
    run(recorder, "r1b", T1, {"other": (1, 1.0, 0)}, customer="b")
    run(recorder, "r2", T2, {})
    assert rules(store) == {("b", "other"): ("delete", 1, 1.0, 0, T1)}
    assert pairs(store) == {"a": (True, T2), "b": (True, T1)}
