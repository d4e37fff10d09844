"""Attacks on the borrowed schema check (worker/drift.py SchemaCheck): a migration lands
between two pairs' runs of one database, within `schema_reuse_seconds`, and the second
pair has a row due. Whatever the migration, the run must behave as a run that read the
catalog itself (`reuse` 0) does: the same outcome, the same rows left. On SQLite,
PostgreSQL and MariaDB.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from connectors import sqlstamp
from connectors.engines import Engines
from tests.gate_support import place
from tests.integration.test_borrowed_schema_check import REUSE, Clock, _run, flexkids, stamps
from tests.integration.test_shared_engines import KDV, TENANT, VL, _alter
from tests.support import fixture_config, snapshot
from worker.events import Outcome
from worker.state import StateStore

borrowed_flexkids = flexkids
stamps_made = stamps


def _cascade(url: str) -> list[str]:
    """A table outside the mapping whose key cascades from invoice: its row goes with the
    invoice (docs/operations.md), on the run's own reading of the keys or a borrowed one."""
    return [
        "CREATE TABLE invoice_note (id INTEGER PRIMARY KEY, organisation_id INTEGER NOT NULL,"
        " invoice_id INTEGER NOT NULL, body VARCHAR(100),"
        " FOREIGN KEY (invoice_id) REFERENCES invoice (id) ON DELETE CASCADE)",
        f"INSERT INTO invoice_note VALUES (1, {TENANT[VL]}, 1, 'a note')",
    ]


# The migration's statements, and the drift the run must fail the invoice rule with (None:
# no drift, VL's expired invoice goes).
MIGRATIONS: dict[str, tuple[Callable[[str], list[str]], str | None]] = {
    "rename-tenant": (
        lambda _: ["ALTER TABLE invoice RENAME COLUMN organisation_id TO org_id"],
        "invoice.organisation_id: column is missing",
    ),
    "rename-date": (
        lambda _: ["ALTER TABLE invoice RENAME COLUMN invoice_date TO issued_on"],
        "invoice.invoice_date: column is missing",
    ),
    "drop-iban": (lambda _: ["ALTER TABLE invoice DROP COLUMN iban"], "invoice.iban"),
    "rename-table": (
        lambda _: ["ALTER TABLE invoice RENAME TO invoice_old"],
        "invoice: table is missing",
    ),
    "cascade-in": (_cascade, None),
}


@pytest.mark.parametrize("migration", sorted(MIGRATIONS))
@pytest.mark.parametrize("reuse", [0.0, REUSE], ids=["own", "borrowed"])
def test_a_migration_between_two_pairs_runs(
    borrowed_flexkids: dict[str, str], state: StateStore, migration: str, reuse: float
) -> None:
    """The run after the migration fails only the invoice rule, with the drift its own
    read finds, and changes no invoice; the pair's other rules still run (a renamed time
    basis column failed the whole pair with `unexpected KeyError` when the run read the
    catalog itself: the grouped count named the column the reflection no longer had)."""
    config, clock = fixture_config(), Clock()
    engines = Engines(clock=clock)
    env = borrowed_flexkids
    url = env["FLEXKIDS_DATABASE_URL"]
    assert _run(config, env, engines, state, KDV, reuse).outcome is Outcome.SUCCEEDED
    statements, drift = MIGRATIONS[migration]
    for statement in statements(url):
        _alter(url, statement)
    before = snapshot(url)
    clock.now += 1
    report = _run(config, env, engines, state, VL, reuse)
    after = snapshot(url)
    if drift is None:
        assert report.outcome is Outcome.SUCCEEDED, report.error
        assert set(before["invoice"]) - set(after["invoice"]) == {(1,)}
        assert after["invoice_note"] == {}
        (plan,) = [r for r in report.rules if r.table == "invoice"]
        assert plan.changed == {"invoice": 1, "invoice_note": 1}  # the new key was read
        return
    assert report.outcome is Outcome.FAILED
    assert report.error is not None and drift in report.error, report.error
    assert "unexpected" not in report.error
    assert after == before
    evaluated = {r.rule for r in report.rules}
    assert "flexkids.user.inactive" in evaluated  # the pair's other rules ran


def test_a_failing_fingerprint_query_changes_nothing(
    borrowed_flexkids: dict[str, str], state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog query fails after a check was kept: an idle run borrows it and
    succeeds; a run with a row due cannot read its own and fails, changing nothing."""
    config, clock = fixture_config(), Clock()
    engines = Engines(clock=clock)
    env = borrowed_flexkids
    url = env["FLEXKIDS_DATABASE_URL"]
    assert _run(config, env, engines, state, KDV, REUSE).outcome is Outcome.SUCCEEDED

    def down(conn: object, names: object) -> None:
        raise sa.exc.ProgrammingError("SELECT", {}, Exception("permission denied"))

    monkeypatch.setattr(sqlstamp, "stamp", down)
    before = snapshot(url)
    clock.now += 1
    assert _run(config, env, engines, state, KDV, REUSE).outcome is Outcome.SUCCEEDED
    report = _run(config, env, engines, state, VL, REUSE)
    assert report.outcome is Outcome.FAILED
    assert report.error is not None and "cannot inspect the schema" in report.error
    assert snapshot(url) == before


def test_a_plan_never_borrows(
    borrowed_flexkids: dict[str, str], state: StateStore, stamps_made: list[str]
) -> None:
    """A dry run reads the catalog itself even within the seconds a real run may borrow,
    and after a migration within them reports the drift from its own read."""
    config, clock = fixture_config(), Clock()
    engines = Engines(clock=clock)
    env = borrowed_flexkids
    assert _run(config, env, engines, state, KDV, REUSE).outcome is Outcome.SUCCEEDED
    assert len(stamps_made) == 1
    clock.now += 1
    plan = _run(config, env, engines, state, KDV, REUSE, dry_run=True)
    assert plan.outcome is Outcome.SUCCEEDED, plan.error
    assert len(stamps_made) == 2
    _alter(env["FLEXKIDS_DATABASE_URL"], "ALTER TABLE invoice DROP COLUMN iban")
    clock.now += 1
    plan = _run(config, env, engines, state, KDV, REUSE, dry_run=True)
    assert plan.outcome is Outcome.FAILED
    assert plan.error is not None and "invoice.iban" in plan.error
    assert len(stamps_made) == 3


def test_an_idle_run_with_a_record_hold_reports_drift_not_a_database_error(
    borrowed_flexkids: dict[str, str], state: StateStore
) -> None:
    config, clock = fixture_config(), Clock()
    engines = Engines(clock=clock)
    env = borrowed_flexkids
    url = env["FLEXKIDS_DATABASE_URL"]
    place(state, customer=KDV, product="flexkids", table="invoice", key_hash="0" * 64)
    assert _run(config, env, engines, state, KDV, REUSE).outcome is Outcome.SUCCEEDED
    _alter(url, "ALTER TABLE invoice RENAME COLUMN id TO invoice_id")
    clock.now += 1
    report = _run(config, env, engines, state, KDV, REUSE)  # KDV has no invoice: idle
    assert report.outcome is Outcome.SUCCEEDED or (
        report.error is not None and "does not match" in report.error
    ), report.error
