"""The runner on the in-memory connector: isolation, retries, stops, audit-first, dry runs."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from connectors.base import ConnectorError
from connectors.memory import MemoryConnector
from tests.support import NOW, fixture_config
from worker.app import run_pairs
from worker.config import Customer, ProductMapping
from worker.errors import AuditWriteError
from worker.events import BatchApplied, BatchIntent, Event, EventBus, Outcome, RunFinished
from worker.retry import RetryPolicy
from worker.run import Runner

PEPPER = b"unit-test-pepper-0123456789"
KDV, VL = "kdv-zonnestraal", "bso-de-vlinder"


def invoices(org: int, expired: int, kept: int, start: int) -> list[dict[str, Any]]:
    old, new = dt.date(2019, 11, 27), dt.date(2019, 11, 28)
    return [
        {
            "id": start + i,
            "organisation_id": org,
            "iban": f"NL00DEMO{start + i:010d}",
            "invoice_date": old if i < expired else new,
        }
        for i in range(expired + kept)
    ]


def empty_tables() -> dict[str, list[dict[str, Any]]]:
    names = (
        "app_user",
        "login_event",
        "parent",
        "child",
        "child_photo",
        "staff",
        "invoice",
        "account",
        "child_media",
    )
    return {n: [] for n in names}


class Fleet:
    """One memory database per customer × product, built on first use."""

    def __init__(self, rows: dict[tuple[str, str], dict[str, list[dict[str, Any]]]]) -> None:
        self.rows = rows
        self.made: dict[tuple[str, str], MemoryConnector] = {}
        self.broken: set[tuple[str, str]] = set()

    def __call__(self, customer: Customer, mapping: ProductMapping) -> MemoryConnector:
        key = (customer.customer, mapping.product)
        if key in self.broken:
            raise ConnectorError("cannot reach postgresql://u:***@127.0.0.1:1/x", transient=True)
        if key not in self.made:
            tables = empty_tables() | self.rows.get(key, {})
            self.made[key] = MemoryConnector(tables, pepper=PEPPER)
        return self.made[key]


def runner(fleet: Fleet, events: list[Event], **kwargs: Any) -> Runner:
    bus = EventBus()
    bus.subscribe(events.append, required=True)
    return Runner(
        fixture_config().catalogue,
        bus,
        fleet,
        pepper=PEPPER,
        clock=lambda: NOW,
        **{"retry": RetryPolicy(sleep=lambda _s: None), **kwargs},
    )


def pair(customer: str, product: str) -> tuple[Customer, ProductMapping]:
    config = fixture_config()
    return config.customers[customer], config.products[product]


def test_one_broken_database_fails_only_its_own_pair() -> None:
    """An unreachable database fails that customer × product; the next pair still runs."""
    fleet = Fleet({(VL, "flexkids"): {"invoice": invoices(2077, 3, 2, 1)}})
    fleet.broken.add((KDV, "konnect"))
    events: list[Event] = []
    reports = run_pairs(
        runner(fleet, events, retry=RetryPolicy(max_attempts=2, sleep=lambda _s: None)),
        [pair(KDV, "konnect"), pair(VL, "flexkids")],
        NOW,
        dry_run=False,
    )
    assert [r.outcome for r in reports] == [Outcome.FAILED, Outcome.SUCCEEDED]
    assert "cannot reach" in (reports[0].error or "")
    assert reports[1].changed == 3
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert [e.outcome for e in finished] == [Outcome.FAILED, Outcome.SUCCEEDED]


def test_transient_error_in_a_batch_is_retried_and_counts_stay_exact() -> None:
    """A transient failure of apply is retried; every expired row is processed exactly once."""
    fleet = Fleet({(VL, "flexkids"): {"invoice": invoices(2077, 7, 2, 1)}})
    events: list[Event] = []
    run = runner(fleet, events, batch_size=3)
    db = fleet(*pair(VL, "flexkids"))
    original = db.apply
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectorError("connection lost", transient=True)
        return original(*args, **kwargs)

    db.apply = flaky  # type: ignore[method-assign]
    report = run.run(*pair(VL, "flexkids"), NOW, dry_run=False)
    assert report.outcome is Outcome.SUCCEEDED
    assert report.changed == 7
    assert sorted(r["id"] for r in db.tables["invoice"]) == [8, 9]
    applied = [e for e in events if isinstance(e, BatchApplied)]
    assert sum(e.total for e in applied) == 7
    # Annex D.5: backups are kept 14 days, so these rows are gone for good on 12 December.
    assert {e.gone_from_backups_by for e in applied} == {dt.date(2026, 12, 12)}
    assert calls["n"] == 4  # three batches, one of them twice


def test_a_permanent_error_is_not_retried() -> None:
    """A non-transient error fails the run at once, with the batch rolled back."""
    fleet = Fleet({(VL, "flexkids"): {"invoice": invoices(2077, 2, 0, 1)}})
    events: list[Event] = []
    run = runner(fleet, events)
    db = fleet(*pair(VL, "flexkids"))
    calls = {"n": 0}

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        calls["n"] += 1
        raise ConnectorError("permission denied for table invoice")

    db.apply = broken  # type: ignore[method-assign]
    report = run.run(*pair(VL, "flexkids"), NOW, dry_run=False)
    assert report.outcome is Outcome.FAILED
    assert calls["n"] == 1
    assert len(db.tables["invoice"]) == 2


def test_stop_finishes_the_batch_in_flight_and_the_next_run_resumes() -> None:
    """A stop request ends the run after the current batch; the next run does the rest once."""
    fleet = Fleet({(VL, "flexkids"): {"invoice": invoices(2077, 10, 1, 1)}})
    events: list[Event] = []
    stop = threading.Event()
    run = runner(fleet, events, stop=stop, batch_size=4)

    def stop_after_first_batch(event: Event) -> None:
        if isinstance(event, BatchApplied) and event.batch == 1 and not second_run:
            stop.set()

    second_run = False

    run.bus.subscribe(stop_after_first_batch)
    first = run.run(*pair(VL, "flexkids"), NOW, dry_run=False)
    assert first.outcome is Outcome.INTERRUPTED
    assert first.changed == 4
    stop.clear()
    second_run = True
    second = run.run(*pair(VL, "flexkids"), NOW, dry_run=False)
    assert second.outcome is Outcome.SUCCEEDED
    assert second.changed == 6
    db = fleet(*pair(VL, "flexkids"))
    assert [r["id"] for r in db.tables["invoice"]] == [11]
    intents = [k for e in events if isinstance(e, BatchIntent) for k in e.key_hashes]
    assert len(intents) == len(set(intents)) == 10  # every key announced exactly once


def test_no_batch_is_applied_when_its_intent_cannot_be_recorded() -> None:
    """If the audit trail refuses the intent, the product database is left untouched."""
    fleet = Fleet({(VL, "flexkids"): {"invoice": invoices(2077, 3, 0, 1)}})
    events: list[Event] = []
    run = runner(fleet, events)

    def refuse_intents(event: Event) -> None:
        if isinstance(event, BatchIntent):
            raise AuditWriteError("state database is down")

    run.bus.subscribe(refuse_intents, required=True)
    report = run.run(*pair(VL, "flexkids"), NOW, dry_run=False)
    assert report.outcome is Outcome.FAILED
    assert "state database is down" in (report.error or "")
    assert len(fleet(*pair(VL, "flexkids")).tables["invoice"]) == 3
    assert not [e for e in events if isinstance(e, BatchApplied)]


def test_dry_run_counts_and_changes_nothing() -> None:
    """A dry run reports the backlog of each rule and leaves every row as it was."""
    fleet = Fleet({(VL, "flexkids"): {"invoice": invoices(2077, 5, 2, 1)}})
    events: list[Event] = []
    report = runner(fleet, events).run(*pair(VL, "flexkids"), NOW, dry_run=True)
    fiscal = next(p for p in report.rules if p.rule == "flexkids.invoice.fiscal")
    assert fiscal.eligible == 5
    assert report.changed == 0
    assert len(fleet(*pair(VL, "flexkids")).tables["invoice"]) == 7
    assert not [e for e in events if isinstance(e, BatchIntent)]


def test_a_state_database_that_fails_fails_the_pair_and_the_next_pair_still_runs() -> None:
    """When the audit trail cannot be written at all, each pair fails on its own; none crash."""
    fleet = Fleet({(VL, "flexkids"): {"invoice": invoices(2077, 2, 0, 1)}})
    events: list[Event] = []
    run = runner(fleet, events)

    def state_down(_event: Event) -> None:
        raise AuditWriteError("could not write to the audit trail: state database is down")

    run.bus.subscribe(state_down, required=True)
    reports = run_pairs(run, [pair(VL, "flexkids"), pair(KDV, "flexkids")], NOW, dry_run=False)
    assert [r.outcome for r in reports] == [Outcome.FAILED, Outcome.FAILED]
    assert all("state database is down" in (r.error or "") for r in reports)
    assert len(fleet(*pair(VL, "flexkids")).tables["invoice"]) == 2
