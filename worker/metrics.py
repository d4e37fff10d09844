"""Every Prometheus metric of the worker, defined here and updated only from run events.

`Metrics` is an `EventBus` subscriber: business code never touches a metric. Each instance
owns its own `CollectorRegistry`, so nothing is registered at import time and tests can build
as many as they like.

Labels are product, customer, rule, action, outcome and why (of a skipped pair) only: never
a record id or anything personal. Dry runs change nothing, so they add no processed rows, no
batch durations and no last-success time; their outcome and duration are still counted (a
dry run that fails is a failure to plan, worth an alert).
"""

from __future__ import annotations

import threading

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from worker.events import (
    BatchApplied,
    BatchBlocked,
    BatchFailed,
    CheckpointMade,
    ConfigLoaded,
    ConnectorStatus,
    Event,
    Outcome,
    PairSkipped,
    RuleEvaluated,
    RuleGated,
    RunRecorded,
    RunStarted,
)
from worker.status import StatusSnapshot

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The Content-Type of `Metrics.exposition()`."""

RULE_LABELS = ("product", "customer", "rule", "action")
RUN_LABELS = ("product", "customer", "outcome")
TARGET_LABELS = ("product", "customer")
PENDING_LABELS = ("product", "customer", "rule")
SKIP_LABELS = ("product", "customer", "why")

# A batch is one small transaction: milliseconds to a few seconds, a minute at worst.
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# A run of one customer and product: seconds when there is little to do, hours for a backlog.
RUN_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)


class Metrics:
    """The worker's metrics in their own registry; call it with each run event."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rows_processed = Counter(
            "retention_rows_processed",
            "Rows anonymised or deleted, by rule and action.",
            RULE_LABELS,
            registry=r,
        )
        self.rows_eligible = Gauge(
            "retention_rows_eligible",
            "Rows past their retention deadline and not yet processed (the backlog).",
            RULE_LABELS,
            registry=r,
        )
        self.compliance_lag = Gauge(
            "retention_compliance_lag_seconds",
            "Seconds the oldest eligible row is past its retention deadline (0 when none).",
            RULE_LABELS,
            registry=r,
        )
        self.runs = Counter(
            "retention_runs",
            "Finished runs of one customer and product, by outcome.",
            RUN_LABELS,
            registry=r,
        )
        self.run_duration = Histogram(
            "retention_run_duration_seconds",
            "Duration of runs of one customer and product, by outcome.",
            RUN_LABELS,
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            "retention_batch_duration_seconds",
            "Duration of batch transactions, applied or rolled back.",
            RULE_LABELS,
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_failures = Counter(
            "retention_batch_failures",
            "Batches rolled back (nothing of them was changed).",
            RULE_LABELS,
            registry=r,
        )
        self.rows_blocked = Counter(
            "retention_rows_blocked",
            "Eligible rows the database refused to change (a foreign key or another "
            "constraint), or the worker did (its foreign keys would reach a row it must not "
            "touch), and that stay, by rule and action (worker/isolation.py).",
            RULE_LABELS,
            registry=r,
        )
        self.last_success = Gauge(
            "retention_last_success_timestamp_seconds",
            "Unix time at which the last successful (or partial; not dry) run finished.",
            TARGET_LABELS,
            registry=r,
        )
        self.config_valid = Gauge(
            "retention_config_valid",
            "1 when the last configuration load was valid, else 0.",
            registry=r,
        )
        self.config_reload_failures = Counter(
            "retention_config_reload_failures",
            "Configuration loads that found problems.",
            registry=r,
        )
        self.connector_up = Gauge(
            "retention_connector_up",
            "1 when the product database of this customer was reachable at the last check.",
            TARGET_LABELS,
            registry=r,
        )
        self.rows_held = Gauge(
            "retention_rows_held",
            "Eligible rows kept because a legal hold covers them, at the last complete run.",
            TARGET_LABELS,
            registry=r,
        )
        self.awaiting_approval = Gauge(
            "retention_runs_awaiting_approval",
            "Rules of this customer and product waiting for a person's approval.",
            TARGET_LABELS,
            registry=r,
        )
        self.pending_since = Gauge(
            "retention_approval_pending_since_timestamp_seconds",
            "Unix time since which a rule has waited for approval.",
            PENDING_LABELS,
            registry=r,
        )
        self.checkpoint_seq = Gauge(
            "retention_audit_checkpoint_seq",
            "Sequence number of the last signed checkpoint of the audit chain.",
            registry=r,
        )
        self.pairs_skipped = Counter(
            "retention_pairs_skipped",
            "Pairs this process did not run in a tick: another process held their lease "
            "(why=held) or had finished them (why=done).",
            SKIP_LABELS,
            registry=r,
        )
        # Runs of different customers may finish on different scheduler threads at once.
        self._lock = threading.Lock()
        self._dry_runs: set[str] = set()
        # (product, customer) → (rule, action) pairs with a backlog series; and the pairs a
        # run in progress has evaluated, to drop the series of rules that no longer exist.
        self._known_rules: dict[tuple[str, str], set[tuple[str, str]]] = {}
        # The backlog and lag series of each (product, customer, rule, action), looked up
        # once: prometheus_client's labels() costs about 40 µs, and every rule of every run
        # sets both (dropped with the series in `_drop_stale_rules`).
        self._rule_series: dict[tuple[str, str, str, str], tuple[Gauge, Gauge]] = {}
        self._evaluated: dict[str, set[tuple[str, str]]] = {}
        # run_id → rule → rows held / awaiting-approval since (unix time); (product,
        # customer) → rules with a pending-since series.
        self._held: dict[str, dict[str, int]] = {}
        self._awaiting: dict[str, dict[str, float]] = {}
        self._pending: dict[tuple[str, str], set[str]] = {}

    def __call__(self, event: Event) -> None:
        """Update the metrics from one run event; other events are ignored."""
        with self._lock:
            self._update(event)

    def _update(self, event: Event) -> None:
        match event:
            case RunStarted():
                if event.dry_run:
                    self._dry_runs.add(event.run_id)
                self._evaluated[event.run_id] = set()
            case RuleEvaluated():
                self._rule_evaluated(event)
                # Held rows are fixed when the rule is gated; a re-evaluation repeats them.
                self._held.setdefault(event.run_id, {}).setdefault(event.rule, event.held)
            case RuleGated() if event.gate == "awaiting_approval":
                since = event.since.timestamp() if event.since is not None else 0.0
                self._awaiting.setdefault(event.run_id, {})[event.rule] = since
            case BatchApplied():
                if event.run_id in self._dry_runs:
                    return
                labels = (event.product, event.customer, event.rule, event.action)
                self.rows_processed.labels(*labels).inc(event.total)
                self.batch_duration.labels(*labels).observe(event.duration_seconds)
            case BatchFailed():
                if event.run_id in self._dry_runs:
                    return
                labels = (event.product, event.customer, event.rule, event.action)
                self.batch_duration.labels(*labels).observe(event.duration_seconds)
                self.batch_failures.labels(*labels).inc()
            case BatchBlocked():
                labels = (event.product, event.customer, event.rule, event.action)
                self.rows_blocked.labels(*labels).inc(event.total)
            case RunRecorded():  # not RunFinished: the trail may still refuse that end
                self._run_recorded(event)
            case ConfigLoaded():
                self.config_valid.set(1 if event.valid else 0)
                if not event.valid:
                    self.config_reload_failures.inc()
            case CheckpointMade():
                self.checkpoint_seq.set(event.seq)
            case PairSkipped():
                self.pairs_skipped.labels(event.product, event.customer, event.why).inc()
            case ConnectorStatus():
                self.connector_up.labels(event.product, event.customer).set(1 if event.up else 0)
            case _:
                pass

    def restore(self, snapshot: StatusSnapshot) -> None:
        """Set the per-pair gauges from the state database's snapshot (a restarted daemon,
        before its first run): last success, backlog and lag per rule, rows held, connector
        state, rules awaiting approval, the last checkpoint. Counters start again at 0."""
        with self._lock:
            for (customer, product), at in snapshot.last_success.items():
                self.last_success.labels(product, customer).set(at.timestamp())
            for (customer, product), figures in snapshot.rules.items():
                for f in figures:
                    labels = (product, customer, f.rule, f.action)
                    self.rows_eligible.labels(*labels).set(f.eligible)
                    self.compliance_lag.labels(*labels).set(max(f.lag_seconds, 0.0))
                    known = self._known_rules.setdefault((product, customer), set())
                    known.add((f.rule, f.action))
                self.rows_held.labels(product, customer).set(sum(f.held for f in figures))
            for (customer, product), up in snapshot.connector_up.items():
                self.connector_up.labels(product, customer).set(1 if up else 0)
            pairs = set(snapshot.rules) | set(snapshot.pending_since)
            for customer, product in pairs:
                waiting = snapshot.pending_since.get((customer, product), {})
                self.awaiting_approval.labels(product, customer).set(len(waiting))
                for rule, since in waiting.items():
                    self.pending_since.labels(product, customer, rule).set(since.timestamp())
                self._pending[(product, customer)] = set(waiting)
            if snapshot.checkpoint_seq is not None:
                self.checkpoint_seq.set(snapshot.checkpoint_seq)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (Content-Type `CONTENT_TYPE`)."""
        return generate_latest(self.registry)

    def _rule_evaluated(self, event: RuleEvaluated) -> None:
        labels = (event.product, event.customer, event.rule, event.action)
        series = self._rule_series.get(labels)
        if series is None:
            series = (self.rows_eligible.labels(*labels), self.compliance_lag.labels(*labels))
            self._rule_series[labels] = series
        eligible, lag = series
        eligible.set(event.eligible)
        lag.set(max(event.lag_seconds, 0.0))
        pair = (event.rule, event.action)
        self._known_rules.setdefault((event.product, event.customer), set()).add(pair)
        evaluated = self._evaluated.get(event.run_id)
        if evaluated is not None:
            evaluated.add(pair)

    def _run_recorded(self, event: RunRecorded) -> None:
        dry = event.dry_run or event.run_id in self._dry_runs
        self._dry_runs.discard(event.run_id)
        evaluated = self._evaluated.pop(event.run_id, None)
        held = self._held.pop(event.run_id, {})
        awaiting = self._awaiting.pop(event.run_id, {})
        outcome = Outcome(event.outcome).value
        self.runs.labels(event.product, event.customer, outcome).inc()
        self.run_duration.labels(event.product, event.customer, outcome).observe(
            event.duration_seconds
        )
        if not Outcome(outcome).complete or dry:  # partial: every rule ran
            return
        self.last_success.labels(event.product, event.customer).set(event.at.timestamp())
        self._gates(event.product, event.customer, held, awaiting)
        if evaluated is not None:
            self._drop_stale_rules(event.product, event.customer, evaluated)

    def _gates(
        self, product: str, customer: str, held: dict[str, int], awaiting: dict[str, float]
    ) -> None:
        """Rows held and rules awaiting approval as a complete run left them."""
        self.rows_held.labels(product, customer).set(sum(held.values()))
        self.awaiting_approval.labels(product, customer).set(len(awaiting))
        for rule, since in awaiting.items():
            self.pending_since.labels(product, customer, rule).set(since)
        before = self._pending.get((product, customer), set())
        for rule in before - set(awaiting):
            self.pending_since.remove(product, customer, rule)
        self._pending[(product, customer)] = set(awaiting)

    def _drop_stale_rules(
        self, product: str, customer: str, evaluated: set[tuple[str, str]]
    ) -> None:
        """Remove backlog series of rules a complete run no longer evaluated (rule removed)."""
        known = self._known_rules.get((product, customer), set())
        for rule, action in known - evaluated:
            self._rule_series.pop((product, customer, rule, action), None)
            self.rows_eligible.remove(product, customer, rule, action)
            self.compliance_lag.remove(product, customer, rule, action)
        self._known_rules[(product, customer)] = set(evaluated)
