"""The alerts and the dashboard name only metrics the worker exports (or is about to).

promtool parses a misspelt metric name happily and the panel or alert then shows nothing,
forever: this test compares every `retention_*` name in the rules and the dashboard with the
sample names of `worker.metrics.Metrics`, plus the four that the approvals, legal holds and
audit checkpoint work adds.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.support import REPO
from worker.metrics import Metrics

UPCOMING = {
    "retention_runs_awaiting_approval",
    "retention_approval_pending_since_timestamp_seconds",
    "retention_rows_held",
    "retention_audit_checkpoint_seq",
}
NAME = re.compile(r"\bretention_[a-z_]+\b")


def exported() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        names.add(family.name)
        for suffix in ("", "_total", "_bucket", "_count", "_sum", "_created"):
            names.add(family.name + suffix)
    return names


def rule_exprs() -> dict[str, str]:
    doc = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yaml").read_text("utf-8"))
    return {r["alert"]: r["expr"] for g in doc["groups"] for r in g["rules"]}


def dashboard_exprs() -> dict[str, str]:
    doc: dict[str, Any] = json.loads(
        (REPO / "deploy" / "grafana" / "retention-worker.json").read_text("utf-8")
    )
    found = {}
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            found[f"{panel['title']} {target['refId']}"] = target["expr"]
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            found[f"variable {var['name']}"] = var["query"]["query"]
    return found


def test_every_metric_named_exists() -> None:
    known = exported() | UPCOMING
    unknown = {
        where: sorted(set(NAME.findall(expr)) - known)
        for where, expr in {**rule_exprs(), **dashboard_exprs()}.items()
        if set(NAME.findall(expr)) - known
    }
    assert unknown == {}


def test_the_dashboard_shows_what_the_issue_lists() -> None:
    exprs = " ".join(dashboard_exprs().values())
    for metric in (
        "retention_compliance_lag_seconds",
        "retention_rows_eligible",
        "retention_rows_processed_total",
        "retention_runs_total",
        "retention_run_duration_seconds_bucket",
        "retention_batch_duration_seconds_bucket",
        "retention_config_valid",
        "retention_connector_up",
        *UPCOMING,
    ):
        assert metric in exprs, metric
    assert "by (action)" in dashboard_exprs()["Rows processed by action A"]
    assert (
        "by (product, customer)" in dashboard_exprs()["Compliance lag per product and customer A"]
    )
