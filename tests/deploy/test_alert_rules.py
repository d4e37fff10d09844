"""The alert rules: promtool accepts them and their unit tests, the tests can fail, every
alert has a runbook in docs/operations.md, and the chart ships the same file."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import CHART, tool
from tests.support import REPO

RULES = REPO / "deploy" / "prometheus" / "alerts.yaml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "alerts.test.yaml"
OPERATIONS = REPO / "docs" / "operations.md"
EXPECTED_ALERTS = {
    "RetentionPairFailing",
    "RetentionRowsBlocked",
    "RetentionNoSuccessfulRun",
    "RetentionComplianceLagHigh",
    "RetentionConfigInvalid",
    "RetentionConnectorDown",
    "RetentionApprovalPendingTooLong",
}


def promtool() -> str:
    return tool("promtool", "apt-get install prometheus, or `make deploy-tools` as root")


def alerts() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text("utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)


def test_promtool_accepts_the_rules_and_their_unit_tests() -> None:
    checked = run(promtool(), "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in checked.stdout
    tested = run(promtool(), "test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_issue_asks_for_these_alerts_and_each_has_tests() -> None:
    assert {rule["alert"] for rule in alerts()} == EXPECTED_ALERTS
    tests = yaml.safe_load(RULE_TESTS.read_text("utf-8"))["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for name in EXPECTED_ALERTS:
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"no test where {name} fires"
        assert any(not case["exp_alerts"] for case in mine), f"no test where {name} stays quiet"


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_unit_tests_fail_when_an_alert_never_fires(name: str, tmp_path: Path) -> None:
    """Replace one alert's expression by one that never fires: its unit tests must fail."""
    doc = yaml.safe_load(RULES.read_text("utf-8"))
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                rule["expr"] = "vector(1) == 0"
    (tmp_path / RULES.name).write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = run(promtool(), "test", "rules", str(tmp_path / RULE_TESTS.name))
    assert tested.returncode != 0
    assert f"alertname: {name}," in tested.stdout + tested.stderr


def _anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the headings of a Markdown text."""
    found = set()
    for line in markdown.splitlines():
        match = re.match(r"#+\s+(.*)", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower().replace("`", ""))
            found.add(text.replace(" ", "-"))
    return found


def test_every_alert_links_a_runbook_section_that_exists() -> None:
    anchors = _anchors(OPERATIONS.read_text("utf-8"))
    for rule in alerts():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/operations.md", rule["alert"]
        assert anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in anchors, f"docs/operations.md has no section #{anchor}"


def test_the_chart_ships_the_same_rules_and_dashboard() -> None:
    for linked, source in [
        (CHART / "files" / "alerts.yaml", RULES),
        (CHART / "files" / "dashboard.json", REPO / "deploy" / "grafana" / "retention-worker.json"),
    ]:
        assert linked.read_bytes() == source.read_bytes(), linked
