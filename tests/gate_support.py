"""Helpers of the integration tests of holds, approvals and the breaker (tests/integration/
test_breaker_runs.py, test_holds.py, test_gate_observed.py): the tests' own kidsapp
configuration on real databases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests import kidsapp
from tests.support import NOW, PEPPER
from worker.app import build_runner, run_pairs, subscribe_state
from worker.configload import Config, load_config
from worker.events import Event, EventBus
from worker.holds import HoldLedger
from worker.run import Runner
from worker.runreport import RunReport
from worker.state import StateStore

OLD = dt.date(2023, 6, 1)  # past 1 month and past the default 24 months on NOW (2026-11-28)
RECENT = dt.date(2026, 11, 20)  # inside 1 month


class Recorder:
    """An EventBus subscriber that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def config(tmp_path: Path, **kwargs: Any) -> Config:
    """The kidsapp configuration under `tmp_path/config`, loaded; `kwargs` as for
    `kidsapp.write_config` (product, customers)."""
    loaded = load_config(kidsapp.write_config(tmp_path / "config", **kwargs))
    loaded.raise_for_problems()
    return loaded


def run(
    cfg: Config,
    url: str,
    state: StateStore,
    *,
    dry_run: bool = False,
    now: dt.datetime = NOW,
    customer: str | None = None,
    extra: list[Any] | None = None,
) -> tuple[list[RunReport], Recorder]:
    runner, recorder = observed_runner(cfg, url, state, now, *(extra or []))
    pairs = [(c, p) for c, p in cfg.pairs() if customer is None or c.customer == customer]
    return run_pairs(runner, pairs, now, dry_run=dry_run), recorder


def observed_runner(
    cfg: Config, url: str, state: StateStore, now: dt.datetime = NOW, *extra: Any
) -> tuple[Runner, Recorder]:
    """A runner of `cfg` on the kidsapp database `url` (state and trail in `state`, the clock
    at `now`) and the recorder of its events; `extra` subscribers observe too."""
    bus = EventBus()
    subscribe_state(bus, state, lambda: now)
    recorder = Recorder()
    bus.subscribe(recorder)
    for subscriber in extra:
        bus.subscribe(subscriber)
    runner = build_runner(
        cfg, {kidsapp.URL_ENV: url}, bus, pepper=PEPPER, clock=lambda: now, store=state
    )
    return runner, recorder


def seed(url: str, tenant_a: list[dt.date | None], tenant_b: list[dt.date | None]) -> None:
    rows = [(i, 1, d) for i, d in enumerate(tenant_a, 1)]
    rows += [(10_000 + i, 2, d) for i, d in enumerate(tenant_b, 1)]
    kidsapp.create(url, rows)


MISTYPED = {"kdv-a": {"settings": {"child_months": 1}}, "kdv-b": {}}


def place(state: StateStore, **scope: Any) -> str:
    fields: dict[str, Any] = {"product": None, "rule": None, "table": None, "key_hash": None}
    fields.update(scope)
    hold = HoldLedger(state).place(matter="M-1", reason="dossier", by="alice", at=NOW, **fields)
    return hold.hold_id


def sample(text: str, name: str, labels: dict[str, str]) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def run_with_late_hold(
    cfg: Config, url: str, state: StateStore, key_hash: str
) -> tuple[RunReport, Recorder, bool]:
    """Run kdv-a's pair once; a record hold on `key_hash` lands at the first read of holds
    inside a product transaction: a batch's guard, after the batch's rows were chosen (a
    page, or the set-based DELETE itself) and before they are committed. Returns the report,
    the events and whether the hold was placed."""
    runner, seen = observed_runner(cfg, url, state)
    original = runner.gatekeeper.active_holds
    database = sa.make_url(url).database
    inside = {"transaction": False, "placed": False}

    def began(conn: sa.Connection) -> None:
        if conn.engine.url.database == database:
            inside["transaction"] = True

    def ended(conn: sa.Connection) -> None:
        if conn.engine.url.database == database:
            inside["transaction"] = False

    def late_hold(customer: str, product: str, *known: Any) -> Any:
        if inside["transaction"] and not inside["placed"]:
            inside["placed"] = True
            place(
                state, customer="kdv-a", product=kidsapp.PRODUCT, table="child", key_hash=key_hash
            )
        return original(customer, product, *known)

    runner.gatekeeper.active_holds = late_hold  # type: ignore[method-assign]
    events = (("begin", began), ("commit", ended), ("rollback", ended))
    for name, fn in events:
        sa.event.listen(sa.engine.Engine, name, fn)
    try:
        [report] = run_pairs(runner, list(cfg.pairs()), NOW, dry_run=False)
    finally:
        for name, fn in events:
            sa.event.remove(sa.engine.Engine, name, fn)
    return report, seen, inside["placed"]
