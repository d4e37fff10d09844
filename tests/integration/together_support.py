"""Helpers for the attacks on customers asked together (worker/together.py): a `kids`
product of the tests' own on a table whose tenant and time basis types each test chooses,
ticks as `run --once` makes them (with and without the joint check), and what a tick
decided, changed and published, to compare the two.

A tick "together" runs with RETENTION_SCHEMA_REUSE_SECONDS at REUSE; a tick "alone" at 0
(each customer counts itself). The invariant compared: the same rows changed, the same
per-rule figures, the same audit events (run ids, instants and durations left out).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from connectors.engines import Engines
from tests.integration.own_config import write_config
from tests.support import NOW, PEPPER, snapshot
from worker.app import build_runner, run_pairs
from worker.audit import AuditTrail
from worker.configload import Config
from worker.events import Event, EventBus
from worker.runreport import RunReport
from worker.state import StateStore
from worker.together import FIRST, LOOKAHEAD

REUSE = 30.0
ENV = "KIDS_DATABASE_URL"
JOINT = "rw_customers"  # in the joint statement only


def joint_statements(customers: int, per_statement: int = 100) -> int:
    """The joint statements a tick of `customers` customers of one shape sends when at least
    half of every check's customers are idle (worker/together.py): each asker asks FIRST
    along, twice as many after each check, up to LOOKAHEAD; `per_statement` customers a
    statement (connectors/sqltogether.py chunk_size)."""
    sent, start, size = 0, 0, FIRST
    while start < customers:
        asked = min(size + 1, customers - start)
        if asked > 1:
            sent += -(-asked // per_statement)
            size = min(LOOKAHEAD, 2 * size)
        start += asked
    return sent


COUNT = "AS oldest"  # in a customer's own backlog count (one rule's or grouped)
CATALOGUE = """\
kinds:
  child: {label: Kind}
categories:
  name: {label: Naam}
  photo: {label: Foto/video}
products:
  kids:
    label: Kids
    annex: A.9
    processes:
      child: [name, photo]
"""
HEAD = """\
product: kids
database: {url_env: KIDS_DATABASE_URL}
tenancy: {column: org}
"""
# One delete rule on the child's own date, its period a setting (default 12 months).
SIMPLE = """\
subjects:
  child:
    kind: child
    table: child
    key: [id]
    columns: {name: name}
    dates: {left: left_on}
rules:
  - id: kids.child.left
    subject: child
    after:
      date: left
      period: {setting: months, default: 12, unit: months}
    action: delete
"""
# Volatile fields of events: another run id, instant or duration in each tick.
VOLATILE = {"run_id", "at", "duration_seconds", "settled_by", "approval_id", "since", "hash"}


def customer_text(tenant: str, *, timezone: str = "Europe/Amsterdam", extra: str = "") -> str:
    """A customer's file after `customer: NAME`: its kids tenant (YAML text) and `extra`
    lines under the product (e.g. `settings: {months: 3}`)."""
    more = "".join(f"    {line}\n" for line in extra.splitlines() if line)
    return f"timezone: {timezone}\nproducts:\n  kids:\n    tenant: {tenant}\n{more}"


def config_of(root: Path, rules: str, customers: Mapping[str, str]) -> Config:
    """The `kids` product with `rules` (subjects and rules) for `customers` (name → text
    after `customer: NAME`), written at `root` and loaded."""
    return write_config(root, HEAD + rules, customers, CATALOGUE)


def execute(url: str, *statements: str, params: Sequence[Mapping[str, Any]] = ()) -> None:
    """Run raw SQL statements in one transaction; the last one with `params` (executemany)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for i, statement in enumerate(statements):
                last = i == len(statements) - 1
                if last and params:
                    conn.execute(sa.text(statement), list(params))
                else:
                    conn.execute(sa.text(statement))
    finally:
        engine.dispose()


_RANDOM_IDS = re.compile(r"\b(H-|A-|run )[0-9a-f]{8,32}\b")  # holds, approvals, runs


def _scrub(value: Any) -> Any:
    """`value` with the random ids of holds and approvals written as H-? and A-?."""
    if isinstance(value, str):
        return _RANDOM_IDS.sub(lambda m: f"{m.group(1)}?", value)
    if isinstance(value, tuple | list):
        return type(value)(_scrub(v) for v in value)
    return value


class Recorder:
    """Every event published, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def trail(self) -> list[tuple[str, dict[str, Any]]]:
        """The events without their volatile fields, sorted by customer then order."""
        found = []
        for event in self.events:
            if not dataclasses.is_dataclass(event) or type(event).__name__ == "CheckpointMade":
                continue
            fields = {
                k: _scrub(v) for k, v in dataclasses.asdict(event).items() if k not in VOLATILE
            }
            found.append((type(event).__name__, fields))
        return sorted(found, key=lambda e: str(e[1].get("customer", "")))


def tick(
    config: Config,
    env: Mapping[str, str],
    state: StateStore,
    *,
    reuse: float = REUSE,
    engines: Engines | None = None,
    dry_run: bool = False,
    recorder: Recorder | None = None,
    pairs: Sequence[Any] | None = None,
    now: dt.datetime = NOW,
    wait: bool = False,
) -> dict[str, RunReport]:
    """`run --once` of every pair of `config` (or `pairs`): the reports by customer."""
    bus = EventBus()
    bus.subscribe(AuditTrail(state, lambda: now), required=True)
    if recorder is not None:
        bus.subscribe(recorder)
    runner = build_runner(
        config,
        env,
        bus,
        pepper=PEPPER,
        clock=lambda: now,
        store=state,
        engines=engines if engines is not None else Engines(),
        schema_reuse_seconds=reuse,
    )
    chosen = list(config.pairs()) if pairs is None else list(pairs)
    found: dict[str, RunReport] = {}
    for report in run_pairs(runner, chosen, now, dry_run=dry_run, wait=wait):
        key = f"{report.customer}/{report.product}"
        while key in found:  # a pair listed twice
            key += "+"
        found[key] = report
    return found


def figures(reports: Mapping[str, RunReport]) -> dict[str, Any]:
    """What a tick decided, per pair: outcome, error, and each rule's figures."""
    return {
        c: (
            r.outcome,
            r.error,
            [(p.rule, p.eligible, p.held, p.gate, dict(p.changed)) for p in r.rules],
        )
        for c, r in reports.items()
    }


@contextmanager
def statements(url: str) -> Iterator[list[str]]:
    """Every statement any engine sends to `url`'s database while the block runs."""
    seen: list[str] = []
    database = sa.make_url(url).database

    def note(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if conn.engine.url.database == database:
            seen.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", note)


@dataclasses.dataclass
class Tick:
    reports: dict[str, RunReport]
    rows: Any
    trail: list[tuple[str, dict[str, Any]]]
    joint: int  # joint statements sent
    counts: int  # own grouped counts sent


def one_tick(
    tmp_path: Path,
    label: str,
    url: str,
    seed: Callable[[], None],
    config: Config,
    *,
    reuse: float,
    **kw: Any,
) -> Tick:
    """Seed, then a tick with its own state database, and what it did."""
    seed()
    store = StateStore(f"sqlite:///{tmp_path / f'state-{label}.db'}")
    store.migrate()
    recorder = Recorder()
    try:
        with statements(url) as seen:
            reports = tick(config, {ENV: url}, store, reuse=reuse, recorder=recorder, **kw)
    finally:
        store.close()
    return Tick(
        reports,
        snapshot(url),
        recorder.trail(),
        sum(JOINT in s for s in seen),
        sum(COUNT in s and JOINT not in s for s in seen),
    )


def both_ticks(
    tmp_path: Path, url: str, seed: Callable[[], None], config: Config, **kw: Any
) -> tuple[Tick, Tick]:
    """The same tick from the same rows together and alone."""
    together = one_tick(tmp_path, "together", url, seed, config, reuse=REUSE, **kw)
    alone = one_tick(tmp_path, "alone", url, seed, config, reuse=0, **kw)
    return together, alone


def assert_equivalent(together: Tick, alone: Tick) -> None:
    """The invariant: the same decisions, rows and audit events."""
    assert figures(together.reports) == figures(alone.reports)
    assert together.rows == alone.rows
    assert together.trail == alone.trail
    assert alone.joint == 0
