"""Metrics are updated from run events only, with the documented names, values and labels."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess

import prometheus_client
import pytest

from worker.events import (
    BatchApplied,
    BatchBlocked,
    BatchFailed,
    BatchIntent,
    CheckpointMade,
    ConfigLoaded,
    ConnectorStatus,
    Event,
    Outcome,
    PairSkipped,
    RuleEvaluated,
    RuleGated,
    RunFinished,
    RunRecorded,
    RunStarted,
)
from worker.metrics import CONTENT_TYPE, Metrics

AT = dt.datetime(2025, 3, 1, 2, 30, tzinfo=dt.UTC)
CUSTOMER, PRODUCT = "kdv-zonnestraal", "flexkids"
RULE_LABELS = {"product": PRODUCT, "customer": CUSTOMER}


def rule_labels(rule: str = "child.contact", action: str = "anonymise") -> dict[str, str]:
    return {**RULE_LABELS, "rule": rule, "action": action}


def evaluated(
    run_id: str,
    eligible: int,
    lag: float,
    rule: str = "child.contact",
    action: str = "anonymise",
    held: int = 0,
) -> RuleEvaluated:
    return RuleEvaluated(
        run_id=run_id,
        customer=CUSTOMER,
        product=PRODUCT,
        rule=rule,
        action=action,
        table="children",
        eligible=eligible,
        lag_seconds=lag,
        cutoff=dt.date(2023, 3, 1),
        period="P2Y",
        source="catalogue",
        held=held,
    )


def applied(
    run_id: str,
    batch: int,
    rows: dict[str, int],
    rule: str = "child.contact",
    action: str = "anonymise",
    duration: float = 0.2,
) -> BatchApplied:
    return BatchApplied(
        run_id=run_id,
        customer=CUSTOMER,
        product=PRODUCT,
        rule=rule,
        action=action,
        table="children",
        batch=batch,
        rows=rows,
        categories=("contact",),
        duration_seconds=duration,
    )


def failed(run_id: str, batch: int, duration: float = 0.05) -> BatchFailed:
    return BatchFailed(
        run_id=run_id,
        customer=CUSTOMER,
        product=PRODUCT,
        rule="child.contact",
        action="anonymise",
        table="children",
        batch=batch,
        error="OperationalError: deadlock detected",
        duration_seconds=duration,
    )


def finished(
    run_id: str, outcome: Outcome = Outcome.SUCCEEDED, duration: float = 42.0, dry: bool = False
) -> RunRecorded:
    """A run's end as stored (the event the metrics count runs from)."""
    return RunRecorded(run_id, CUSTOMER, PRODUCT, outcome, AT, duration, stored=True, dry_run=dry)


def realistic_run(run_id: str = "run-1") -> list[Event]:
    """One successful run: two rules, three batches (one rolled back), backlog re-reported."""
    return [
        ConfigLoaded(valid=True, problems=0),
        ConnectorStatus(CUSTOMER, PRODUCT, up=True),
        RunStarted(run_id, CUSTOMER, PRODUCT, AT),
        evaluated(run_id, eligible=250, lag=86_400.0),
        BatchIntent(
            run_id=run_id,
            customer=CUSTOMER,
            product=PRODUCT,
            rule="child.contact",
            action="anonymise",
            table="children",
            batch=1,
            key_hashes=("h1", "h2"),
            cutoff=dt.date(2023, 3, 1),
        ),
        applied(run_id, 1, {"children": 100, "contacts": 20}, duration=0.3),
        failed(run_id, 2),
        applied(run_id, 3, {"children": 100}, duration=0.1),
        evaluated(run_id, eligible=50, lag=3_600.0),
        evaluated(run_id, eligible=7, lag=60.0, rule="invoice.old", action="delete"),
        applied(run_id, 1, {"invoices": 7}, rule="invoice.old", action="delete"),
        evaluated(run_id, eligible=0, lag=0.0, rule="invoice.old", action="delete"),
        finished(run_id),
    ]


def gated(
    run_id: str, rule: str, since: dt.datetime | None, gate: str = "awaiting_approval"
) -> Event:
    return RuleGated(
        run_id=run_id,
        customer=CUSTOMER,
        product=PRODUCT,
        rule=rule,
        action="delete",
        table="parents",
        gate=gate,
        why="breaker" if gate == "awaiting_approval" else "hold",
        eligible=60_000,
        since=since,
    )


def test_the_checkpoint_gauge_follows_the_last_checkpoint() -> None:
    """retention_audit_checkpoint_seq is the seq of the last checkpoint made."""
    m = Metrics()
    for seq in (12, 40):
        m(CheckpointMade(seq=seq, hash="a" * 64, at=AT, key_id=None, signature=None))
    assert value(m, "retention_audit_checkpoint_seq") == 40


def test_holds_and_approvals_are_what_the_last_complete_run_left() -> None:
    """Rows held is the sum over rules; awaiting counts waiting rules, each with its since;
    a later run where a rule no longer waits drops its series and the count."""
    run1 = realistic_run("run-1")
    run1[3] = evaluated("run-1", eligible=250, lag=86_400.0, held=4)
    run1.insert(-1, gated("run-1", "parent.erase", since=AT))
    run1.insert(-1, gated("run-1", "staff.erase", since=AT + dt.timedelta(hours=1)))
    m = feed(Metrics(), run1)
    target = {"product": PRODUCT, "customer": CUSTOMER}
    assert value(m, "retention_rows_held", target) == 4
    assert value(m, "retention_runs_awaiting_approval", target) == 2
    since = "retention_approval_pending_since_timestamp_seconds"
    assert value(m, since, {**target, "rule": "staff.erase"}) == AT.timestamp() + 3600
    run2 = realistic_run("run-2")
    run2.insert(-1, gated("run-2", "staff.erase", since=AT + dt.timedelta(hours=1)))
    feed(m, run2)
    assert value(m, "retention_rows_held", target) == 0
    assert value(m, "retention_runs_awaiting_approval", target) == 1
    assert value(m, since, {**target, "rule": "parent.erase"}) is None
    assert value(m, since, {**target, "rule": "staff.erase"}) == AT.timestamp() + 3600


def feed(metrics: Metrics, events: list[Event]) -> Metrics:
    for event in events:
        metrics(event)
    return metrics


def value(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    return metrics.registry.get_sample_value(name, labels or {})


def test_realistic_run_sets_every_metric() -> None:
    """After a realistic run the counters, gauges and histograms hold the expected values."""
    m = feed(Metrics(), realistic_run())
    assert value(m, "retention_rows_processed_total", rule_labels()) == 220
    assert value(m, "retention_rows_processed_total", rule_labels("invoice.old", "delete")) == 7
    assert value(m, "retention_rows_eligible", rule_labels()) == 50
    assert value(m, "retention_compliance_lag_seconds", rule_labels()) == 3_600
    assert value(m, "retention_rows_eligible", rule_labels("invoice.old", "delete")) == 0
    run = {**RULE_LABELS, "outcome": "succeeded"}
    assert value(m, "retention_runs_total", run) == 1
    assert value(m, "retention_run_duration_seconds_count", run) == 1
    assert value(m, "retention_run_duration_seconds_sum", run) == 42
    assert value(m, "retention_batch_duration_seconds_count", rule_labels()) == 3
    assert value(m, "retention_batch_duration_seconds_sum", rule_labels()) == pytest.approx(0.45)
    assert value(m, "retention_batch_failures_total", rule_labels()) == 1
    assert value(m, "retention_last_success_timestamp_seconds", RULE_LABELS) == AT.timestamp()
    assert value(m, "retention_config_valid") == 1
    assert value(m, "retention_config_reload_failures_total") == 0
    assert value(m, "retention_connector_up", RULE_LABELS) == 1


def test_dry_run_counts_no_rows_and_no_success() -> None:
    """A dry run adds no processed rows, no batch durations and no last-success time."""
    m = feed(
        Metrics(),
        [
            RunStarted("dry-1", CUSTOMER, PRODUCT, AT, dry_run=True),
            evaluated("dry-1", eligible=250, lag=86_400.0),
            applied("dry-1", 1, {"children": 100}),
            failed("dry-1", 2),
            finished("dry-1", dry=True),
        ],
    )
    assert value(m, "retention_rows_processed_total", rule_labels()) is None
    assert value(m, "retention_batch_duration_seconds_count", rule_labels()) is None
    assert value(m, "retention_last_success_timestamp_seconds", RULE_LABELS) is None
    assert value(m, "retention_rows_eligible", rule_labels()) == 250
    assert value(m, "retention_runs_total", {**RULE_LABELS, "outcome": "succeeded"}) == 1


def test_dry_flag_on_run_recorded_alone_sets_no_success() -> None:
    """RunRecorded.dry_run suffices to keep the last-success time unset."""
    m = feed(Metrics(), [finished("dry-2", dry=True)])
    assert value(m, "retention_last_success_timestamp_seconds", RULE_LABELS) is None


def test_failed_run_keeps_previous_success_time() -> None:
    """A failed run is counted by outcome and leaves the last-success time as it was."""
    m = feed(Metrics(), realistic_run("run-1"))
    at = AT + dt.timedelta(days=1)
    later = RunFinished("run-2", CUSTOMER, PRODUCT, Outcome.FAILED, at, 3.0, error="boom")
    stored = RunRecorded("run-2", CUSTOMER, PRODUCT, Outcome.FAILED, at, 3.0, stored=True)
    feed(m, [RunStarted("run-2", CUSTOMER, PRODUCT, AT), later, stored])
    assert value(m, "retention_runs_total", {**RULE_LABELS, "outcome": "failed"}) == 1
    assert value(m, "retention_runs_total", {**RULE_LABELS, "outcome": "succeeded"}) == 1
    assert value(m, "retention_last_success_timestamp_seconds", RULE_LABELS) == AT.timestamp()


def test_invalid_config_and_connector_down() -> None:
    """An invalid configuration sets config_valid to 0 and counts a failure; a down connector 0."""
    m = feed(
        Metrics(),
        [
            ConfigLoaded(valid=True, problems=0),
            ConfigLoaded(valid=False, problems=3),
            ConnectorStatus(CUSTOMER, PRODUCT, up=True),
            ConnectorStatus(CUSTOMER, PRODUCT, up=False),
        ],
    )
    assert value(m, "retention_config_valid") == 0
    assert value(m, "retention_config_reload_failures_total") == 1
    assert value(m, "retention_connector_up", RULE_LABELS) == 0


def test_rule_no_longer_evaluated_loses_its_backlog_series() -> None:
    """After a complete run that no longer evaluates a rule, its backlog series disappear."""
    m = feed(Metrics(), realistic_run("run-1"))
    feed(
        m,
        [
            RunStarted("run-2", CUSTOMER, PRODUCT, AT),
            evaluated("run-2", eligible=10, lag=5.0),
            finished("run-2"),
        ],
    )
    assert value(m, "retention_rows_eligible", rule_labels()) == 10
    assert value(m, "retention_rows_eligible", rule_labels("invoice.old", "delete")) is None
    assert (
        value(m, "retention_compliance_lag_seconds", rule_labels("invoice.old", "delete")) is None
    )


def test_a_rule_evaluated_again_after_its_series_were_dropped_has_them_back() -> None:
    """The series a rule's evaluation sets are looked up once (worker/metrics.py); once a
    complete run dropped them (the rule gone), a later run that evaluates the rule again
    shows them with its figures, not a dropped series."""
    m = feed(Metrics(), realistic_run("run-1"))
    feed(m, [RunStarted("run-2", CUSTOMER, PRODUCT, AT), finished("run-2")])
    gone = rule_labels("invoice.old", "delete")
    assert value(m, "retention_rows_eligible", gone) is None
    back = evaluated("run-3", eligible=7, lag=3.0, rule="invoice.old", action="delete")
    feed(m, [RunStarted("run-3", CUSTOMER, PRODUCT, AT), back, finished("run-3")])
    assert value(m, "retention_rows_eligible", gone) == 7
    assert value(m, "retention_compliance_lag_seconds", gone) == 3.0


def test_labels_are_only_the_allowed_sets() -> None:
    """Every series carries exactly its documented label set, from the five allowed labels."""
    rule = {"product", "customer", "rule", "action"}
    run = {"product", "customer", "outcome"}
    target = {"product", "customer"}
    expected = {
        "retention_rows_processed": rule,
        "retention_rows_eligible": rule,
        "retention_compliance_lag_seconds": rule,
        "retention_batch_duration_seconds": rule,
        "retention_batch_failures": rule,
        "retention_rows_blocked": rule,
        "retention_runs": run,
        "retention_run_duration_seconds": run,
        "retention_last_success_timestamp_seconds": target,
        "retention_connector_up": target,
        "retention_config_valid": set(),
        "retention_config_reload_failures": set(),
        "retention_audit_checkpoint_seq": set(),
        "retention_rows_held": target,
        "retention_runs_awaiting_approval": target,
        "retention_approval_pending_since_timestamp_seconds": {"product", "customer", "rule"},
        "retention_pairs_skipped": {"product", "customer", "why"},
    }
    events = realistic_run()
    events.insert(-1, gated("run-1", "parent.erase", since=AT))
    skipped = PairSkipped(CUSTOMER, PRODUCT, AT, "held", "pod-b|1")
    m = feed(Metrics(), [*events, ConfigLoaded(valid=False, problems=1), skipped])
    seen = set()
    for family in m.registry.collect():
        assert family.name in expected, f"undocumented metric {family.name}"
        seen.add(family.name)
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == expected[family.name], sample
    assert seen == set(expected)


def test_a_skipped_pair_is_counted_by_why() -> None:
    """PairSkipped counts per product, customer and why; nothing else moves."""
    m = feed(
        Metrics(),
        [
            PairSkipped(CUSTOMER, PRODUCT, AT, "held", "pod-b|1"),
            PairSkipped(CUSTOMER, PRODUCT, AT, "held", "pod-b|1"),
            PairSkipped(CUSTOMER, PRODUCT, AT, "done", "pod-c|7"),
        ],
    )
    labels = {"product": PRODUCT, "customer": CUSTOMER}
    assert value(m, "retention_pairs_skipped_total", {**labels, "why": "held"}) == 2
    assert value(m, "retention_pairs_skipped_total", {**labels, "why": "done"}) == 1
    assert value(m, "retention_runs_total", {**labels, "outcome": "succeeded"}) is None


def test_blocked_rows_are_counted_and_a_partial_run_counts_as_complete() -> None:
    """batch.blocked adds its rows to retention_rows_blocked_total (no key in a label); a
    partial run (every rule ran, some rows blocked) sets the last-success time."""
    blocked = BatchBlocked(
        run_id="run-1",
        customer=CUSTOMER,
        product=PRODUCT,
        rule="child.contact",
        action="anonymise",
        table="children",
        batch=1,
        key_hashes=("a" * 64, "b" * 64),
        unresolved=0,
        errors=("cannot anonymise rows of children: UniqueViolation [SQLSTATE 23505]",),
        attempts=5,
    )
    events = [
        RunStarted("run-1", CUSTOMER, PRODUCT, AT),
        blocked,
        finished("run-1", Outcome.PARTIAL),
    ]
    m = feed(Metrics(), events)
    assert value(m, "retention_rows_blocked_total", rule_labels()) == 2
    assert value(m, "retention_runs_total", {**RULE_LABELS, "outcome": "partial"}) == 1
    assert value(m, "retention_last_success_timestamp_seconds", RULE_LABELS) == AT.timestamp()


def test_each_instance_has_its_own_registry() -> None:
    """Metrics register nothing globally: two instances and the default registry are separate."""
    a, b = Metrics(), Metrics()
    feed(a, realistic_run())
    assert value(b, "retention_rows_processed_total", rule_labels()) is None
    default = prometheus_client.REGISTRY.get_sample_value(
        "retention_rows_processed_total", rule_labels()
    )
    assert default is None


def test_exposition_is_text_format() -> None:
    """exposition() renders the registry in the Prometheus text format with _total counters."""
    text = feed(Metrics(), realistic_run()).exposition().decode()
    assert "# TYPE retention_rows_processed_total counter" in text
    assert "# TYPE retention_run_duration_seconds histogram" in text
    assert CONTENT_TYPE.startswith("text/plain")


def test_promtool_accepts_the_exposition() -> None:
    """`promtool check metrics` finds no problem in the names, types and help texts."""
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool is not installed (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    exposition = feed(Metrics(), [*realistic_run(), ConfigLoaded(False, 2)]).exposition()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == b"", result.stdout


def test_an_end_is_counted_when_recorded_not_when_published() -> None:
    """A run's RunFinished alone moves no counter: the trail may still refuse that end
    (worker/state/runlog.py, RunClosed); the process then records it as interrupted."""
    m = feed(Metrics(), realistic_run("run-1")[:-1])
    succeeded = {**RULE_LABELS, "outcome": "succeeded"}
    feed(m, [RunFinished("run-1", CUSTOMER, PRODUCT, Outcome.SUCCEEDED, AT, 3.0)])
    assert value(m, "retention_runs_total", succeeded) is None
    assert value(m, "retention_last_success_timestamp_seconds", RULE_LABELS) is None
    refused = RunRecorded("run-1", CUSTOMER, PRODUCT, Outcome.INTERRUPTED, AT, 3.0, stored=False)
    feed(m, [refused])
    assert value(m, "retention_runs_total", succeeded) is None
    assert value(m, "retention_runs_total", {**RULE_LABELS, "outcome": "interrupted"}) == 1
    assert value(m, "retention_last_success_timestamp_seconds", RULE_LABELS) is None
