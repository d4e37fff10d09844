"""What the per-pair metrics showed, kept in the state database so a restart does not forget it.

A daemon that restarts (a new pod, a crash loop) starts with empty gauges: no last-success
time, no backlog, no lag. An alert on "no success for two days" would then stay silent for a
pod that never gets a run done. So each run's end records its rules' backlog, lag and held rows
and the pair's connector state (`StatusRecorder`, one write per run), and the daemon rebuilds
the gauges from the state database before it serves /metrics (`read_status`): last success
from `runs`, backlog from `rule_status`, waiting approvals from the ledger, the last checkpoint.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from worker.events import ConnectorStatus, Event, Outcome, RuleEvaluated, RunFinished, RunStarted
from worker.state import StateStore
from worker.state.models import approvals, checkpoints, pair_status, rule_status, runs
from worker.state.store import utc

Pair = tuple[str, str]  # (customer, product)


@dataclass(frozen=True)
class _Statements:
    """The status writes of one dialect, built once (their SQL is compiled once and cached)."""

    drop_unlisted: Any  # DELETE the pair's rules not in :listed (expanding)
    drop_all: Any  # DELETE all the pair's rules
    upsert_rules: Any  # INSERT … ON CONFLICT (customer, product, rule) DO UPDATE every figure
    upsert_pair: Any  # INSERT … ON CONFLICT (customer, product) DO UPDATE the connector state


_BUILT: dict[str, _Statements] = {}


def _statements(dialect_name: str) -> _Statements:
    """The status writes for `dialect_name` ("postgresql"; else SQLite's)."""
    found = _BUILT.get(dialect_name)
    if found is not None:
        return found
    dialect: Any = postgresql if dialect_name == "postgresql" else sqlite
    pair = sa.and_(
        rule_status.c.customer == sa.bindparam("customer"),
        rule_status.c.product == sa.bindparam("product"),
    )
    rules = dialect.insert(rule_status)
    rules = rules.on_conflict_do_update(
        index_elements=[rule_status.c.customer, rule_status.c.product, rule_status.c.rule],
        set_={
            k: rules.excluded[k]
            for k in ("action", "eligible", "lag_seconds", "held", "updated_at")
        },
    )
    state = dialect.insert(pair_status)
    state = state.on_conflict_do_update(
        index_elements=[pair_status.c.customer, pair_status.c.product],
        set_={k: state.excluded[k] for k in ("connector_up", "updated_at")},
    )
    found = _Statements(
        drop_unlisted=rule_status.delete().where(
            pair, rule_status.c.rule.not_in(sa.bindparam("listed", expanding=True))
        ),
        drop_all=rule_status.delete().where(pair),
        upsert_rules=rules,
        upsert_pair=state,
    )
    _BUILT[dialect_name] = found
    return found


@dataclass(frozen=True)
class RuleFigures:
    rule: str
    action: str
    eligible: int
    lag_seconds: float
    held: int


@dataclass
class StatusSnapshot:
    """The gauges of the pairs asked for, as the state database last knew them."""

    last_success: dict[Pair, dt.datetime] = field(default_factory=dict)
    rules: dict[Pair, list[RuleFigures]] = field(default_factory=dict)
    connector_up: dict[Pair, bool] = field(default_factory=dict)
    pending_since: dict[Pair, dict[str, dt.datetime]] = field(default_factory=dict)
    checkpoint_seq: int | None = None


def read_status(store: StateStore, pairs: Iterable[Pair]) -> StatusSnapshot:
    """The snapshot of `pairs` (the configuration's), in one read transaction."""
    wanted = set(pairs)

    def read(conn: Connection) -> StatusSnapshot:
        snap = StatusSnapshot()
        success = (
            sa.select(runs.c.customer, runs.c.product, sa.func.max(runs.c.finished_at))
            .where(runs.c.outcome.in_(("succeeded", "partial")), runs.c.dry_run.is_(False))
            .group_by(runs.c.customer, runs.c.product)
        )
        for customer, product, at in conn.execute(success):
            if (customer, product) in wanted and at is not None:
                snap.last_success[(customer, product)] = utc(at)
        for r in conn.execute(sa.select(rule_status)):
            if (r.customer, r.product) in wanted:
                snap.rules.setdefault((r.customer, r.product), []).append(
                    RuleFigures(
                        r.rule, r.action, int(r.eligible), float(r.lag_seconds), int(r.held)
                    )
                )
        for r in conn.execute(sa.select(pair_status)):
            if (r.customer, r.product) in wanted:
                snap.connector_up[(r.customer, r.product)] = bool(r.connector_up)
        waiting = sa.select(
            approvals.c.customer, approvals.c.product, approvals.c.rule, approvals.c.requested_at
        ).where(approvals.c.status == "waiting")
        for customer, product, rule, since in conn.execute(waiting):
            if (customer, product) in wanted:
                snap.pending_since.setdefault((customer, product), {})[rule] = utc(since)
        seq = conn.execute(sa.select(sa.func.max(checkpoints.c.seq))).scalar()
        snap.checkpoint_seq = int(seq) if seq is not None else None
        return snap

    return store.read("reading the last known status", read)


class StatusRecorder:
    """EventBus subscriber: at each real run's end, its rules' figures and connector state."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._dry: set[str] = set()
        self._rules: dict[str, dict[str, RuleFigures]] = {}
        self._up: dict[Pair, bool] = {}

    def __call__(self, event: Event) -> None:
        match event:
            case RunStarted():
                if event.dry_run:
                    self._dry.add(event.run_id)
                self._rules[event.run_id] = {}
            case RuleEvaluated() if event.run_id not in self._dry:
                # The last evaluation wins: after the batches it is what is left.
                self._rules.setdefault(event.run_id, {})[event.rule] = RuleFigures(
                    event.rule, event.action, event.eligible, event.lag_seconds, event.held
                )
            case ConnectorStatus():
                self._up[(event.customer, event.product)] = event.up
            case RunFinished():
                figures = self._rules.pop(event.run_id, {})
                if event.run_id in self._dry or event.dry_run:
                    self._dry.discard(event.run_id)
                    return
                pair = (event.customer, event.product)
                complete = Outcome(event.outcome).complete
                self._write(pair, figures, self._up.pop(pair, None), complete, event.at)
            case _:
                pass

    def _write(
        self,
        pair: Pair,
        figures: dict[str, RuleFigures],
        up: bool | None,
        complete: bool,
        at: dt.datetime,
    ) -> None:
        customer, product = pair
        when = at.astimezone(dt.UTC)
        listed = list(figures)
        rows = [
            {
                "customer": customer,
                "product": product,
                "rule": f.rule,
                "action": f.action,
                "eligible": f.eligible,
                "lag_seconds": f.lag_seconds,
                "held": f.held,
                "updated_at": when,
            }
            for f in figures.values()
        ]

        def write(conn: Connection, _retried: bool) -> None:
            made = _statements(conn.dialect.name)
            # A complete run lists every rule: drop those that no longer exist. The others
            # (an incomplete run's unlisted rules) keep their last figures.
            if complete:
                mine = {"customer": customer, "product": product}
                if listed:
                    conn.execute(made.drop_unlisted, {**mine, "listed": listed})
                else:
                    conn.execute(made.drop_all, mine)
            if rows:
                conn.execute(made.upsert_rules, rows)
            if up is not None:
                conn.execute(
                    made.upsert_pair,
                    {
                        "customer": customer,
                        "product": product,
                        "connector_up": up,
                        "updated_at": when,
                    },
                )

        self._store.write_later(f"the status of {customer} × {product}", write, optional=True)
