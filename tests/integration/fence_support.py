"""Shared by the end-to-end tests of one outcome per batch (worker/trailrows.py): a product
of 30 old children (2 notes each) and 2 recent ones, deleted in batches of 10, two runners
on one SQLite state whose leases run on a clock moved by hand."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests import kidsapp
from tests.support import NOW, PEPPER
from worker.app import build_runner, subscribe_state
from worker.configload import Config, load_config
from worker.events import Event, EventBus
from worker.leases import Leases
from worker.run import Runner
from worker.runreport import RunReport
from worker.state import StateStore

OLD = dt.date(2023, 1, 1)
RECENT = dt.date(2026, 11, 20)
LEASE_SECONDS = 60  # renewed every 20 s of real time: never within this test


class Clock:
    """The runs' and the leases' clock, moved by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


def config_for(tmp_path: Path, product_url: str) -> Config:
    config = load_config(
        kidsapp.write_config(
            tmp_path / "config",
            product=kidsapp.with_notes(batch_size=10),
            customers={"kdv-a": {}},
        )
    )
    config.raise_for_problems()
    old = [(i, 1, OLD) for i in range(1, 31)]
    kidsapp.create(product_url, [*old, (31, 1, RECENT), (32, 1, RECENT)], notes=2)
    return config


def runner_for(
    config: Config, url: str, state: StateStore, clock: Clock, holder: str, *first: Any
) -> tuple[Runner, list[Event]]:
    """A runner whose leases are `holder`'s on `clock`; `first` subscribers see each event
    before the trail does."""
    bus = EventBus()
    for subscriber in first:
        bus.subscribe(subscriber)
    subscribe_state(bus, state, clock)
    seen: list[Event] = []
    bus.subscribe(seen.append)
    runner = build_runner(
        config, {kidsapp.URL_ENV: url}, bus, pepper=PEPPER, clock=clock, store=state
    )
    runner.leases = Leases(state, LEASE_SECONDS, clock=clock, holder=holder)
    return runner, seen


def left_in(url: str) -> tuple[list[int], int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            ids = conn.execute(sa.select(kidsapp.CHILD.c.id).order_by(kidsapp.CHILD.c.id))
            notes = conn.execute(sa.select(sa.func.count()).select_from(kidsapp.NOTE)).scalar()
            return list(ids.scalars()), int(notes or 0)
    finally:
        engine.dispose()


def trail_of(state: StateStore) -> list[tuple[str, str | None, dict[str, Any]]]:
    with state.audit_snapshot() as (_head, records):
        return [(r.kind, r.run_id, json.loads(r.payload)) for r in records]


def assert_no_personal_data(report: RunReport) -> None:
    """The refused record's error names batch, rule and run, never a child's values."""
    text = report.error or ""
    for value in ("Kind ", "pinda", "notitie"):
        assert value not in text
