"""Helpers shared by the integration and acceptance tests (not fixtures: plain functions)."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from demo.schemas import create_schema
from worker.app import build_runner, run_pairs
from worker.audit import AuditTrail
from worker.configload import Config, load_config
from worker.events import Event, EventBus
from worker.runreport import RunReport
from worker.state import StateStore

REPO = Path(__file__).resolve().parent.parent
# The shipped config/ is an example customers edit freely; the tests own this configuration.
FIXTURE_CONFIG = REPO / "tests" / "fixtures" / "config"
# Subprocesses run here: no config/ beside it, so a command the test forgot to give --config
# fails, instead of quietly reading the shipped configuration.
RUN_DIR = REPO / "tests"
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
PEPPER = b"test-pepper-0123456789abcdef"

Snapshot = dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]


def fixture_config() -> Config:
    """The tests' own configuration (tests/fixtures/config), loaded; raises on a problem."""
    config = load_config(FIXTURE_CONFIG)
    config.raise_for_problems()
    return config


def copy_config(tmp_path: Path) -> Path:
    """A copy of the tests' configuration at `tmp_path`/config, free to break."""
    target = tmp_path / "config"
    shutil.copytree(FIXTURE_CONFIG, target)
    return target


def edit_config(config_dir: Path, relative: str, old: str, new: str) -> int:
    """Replace the one occurrence of `old` in a file of a copied configuration.

    Returns the 1-based line where `old` began; fails the test when `old` is not there
    exactly once (the fixture changed under the test).
    """
    file = config_dir / relative
    text = file.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {relative}"
    file.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def product_env(flexkids: str, konnect_kdv: str, konnect_vlinder: str) -> dict[str, str]:
    """Environment naming the three product databases of the tests' configuration."""
    return {
        "FLEXKIDS_DATABASE_URL": flexkids,
        "KONNECT_ZONNESTRAAL_DATABASE_URL": konnect_kdv,
        "KONNECT_DE_VLINDER_DATABASE_URL": konnect_vlinder,
    }


def schemas(env: Mapping[str, str]) -> None:
    create_schema(env["FLEXKIDS_DATABASE_URL"], "flexkids")
    create_schema(env["KONNECT_ZONNESTRAAL_DATABASE_URL"], "konnect")
    create_schema(env["KONNECT_DE_VLINDER_DATABASE_URL"], "konnect")


class Recorder:
    """An EventBus subscriber that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)


def run_once(
    config: Config,
    env: Mapping[str, str],
    state: StateStore,
    *,
    customer: str | None = None,
    product: str | None = None,
    now: dt.datetime = NOW,
    dry_run: bool = False,
    extra: list[Any] | None = None,
) -> list[RunReport]:
    """Run the selected pairs exactly as `retention-worker run --once` does."""
    bus = EventBus()
    bus.subscribe(AuditTrail(state, lambda: now), required=True)
    for subscriber in extra or []:
        bus.subscribe(subscriber)
    runner = build_runner(config, env, bus, pepper=PEPPER, clock=lambda: now)
    pairs = [
        (c, p)
        for c, p in config.pairs()
        if (customer is None or c.customer == customer)
        and (product is None or p.product == product)
    ]
    return run_pairs(runner, pairs, now, dry_run=dry_run)


def snapshot(url: str) -> Snapshot:
    """Every row of every table, by primary key, as tuples of all columns."""
    engine = sa.create_engine(url)
    try:
        md = sa.MetaData()
        md.reflect(engine)
        found: Snapshot = {}
        with engine.connect() as conn:
            for table in md.sorted_tables:
                pk = list(table.primary_key.columns)
                rows = conn.execute(sa.select(table).order_by(*pk)).mappings().all()
                found[table.name] = {
                    tuple(r[c.name] for c in pk): tuple(r[c.name] for c in table.c) for r in rows
                }
        return found
    finally:
        engine.dispose()


def columns(url: str, table: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return [c["name"] for c in sa.inspect(engine).get_columns(table)]
    finally:
        engine.dispose()


def insert(url: str, table: str, rows: list[dict[str, Any]]) -> None:
    engine = sa.create_engine(url)
    try:
        md = sa.MetaData()
        target = sa.Table(table, md, autoload_with=engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(target), rows)
    finally:
        engine.dispose()
