"""End to end with a real Prometheus: it scrapes the worker daemon, which runs against
PostgreSQL, and evaluates the shipped alert rules.

One customer's Konnect database is unreachable (a closed port). Prometheus must hold the
rows the worker processed, exactly, and take RetentionConnectorDown through pending to
firing for that customer × product only. The rules are deploy/prometheus/alerts.yaml with
a `for:` of a few seconds instead of 15 minutes; the expressions are the shipped ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.acceptance.conftest import Setup
from tests.acceptance.harness import poll
from tests.deploy.prometheus import PrometheusServer
from tests.rows import flexkids_row
from tests.support import REPO, insert

RULES = REPO / "deploy" / "prometheus" / "alerts.yaml"
KDV, VL = "kdv-zonnestraal", "bso-de-vlinder"
BROKEN_URL = "postgresql+psycopg://u:pw@127.0.0.1:1/x"
INVOICE_RULE = "flexkids.invoice.fiscal"
EXPIRED = 120
SHORT_FOR = "3s"


def short_rules(folder: Path) -> Path:
    """The shipped rules, with RetentionConnectorDown's `for:` cut to SHORT_FOR."""
    doc = yaml.safe_load(RULES.read_text("utf-8"))
    (rule,) = [
        r for g in doc["groups"] for r in g["rules"] if r.get("alert") == "RetentionConnectorDown"
    ]
    rule["for"] = SHORT_FOR
    path = folder / "alerts.test-only.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    return path


def alerts_named(prom: PrometheusServer, name: str, state: str) -> list[dict[str, Any]]:
    return [a for a in prom.alerts() if a["labels"]["alertname"] == name and a["state"] == state]


def test_prometheus_scrapes_processed_rows_and_fires_connector_down(
    setup: Callable[..., Setup], tmp_path: Path
) -> None:
    env = setup(KONNECT_DE_VLINDER_DATABASE_URL=BROKEN_URL)
    rows = [
        flexkids_row("invoice", i, 1042, dt.date(2015, 1, 1) + dt.timedelta(days=i))
        for i in range(1, EXPIRED + 1)
    ]
    insert(env.env["FLEXKIDS_DATABASE_URL"], "invoice", rows)
    worker = env.start()
    folder = tmp_path / "prometheus"
    folder.mkdir()
    prom = PrometheusServer(folder, [f"127.0.0.1:{env.port}"], [short_rules(folder)])
    try:
        poll(
            lambda: prom.query('up{job="retention-worker"} == 1'),
            30,
            f"Prometheus scraping the worker\n{prom.tail()}\n{worker.tail()}",
        )

        # The processed rows, as Prometheus stored them, equal what the worker did.
        processed = (
            f'sum(retention_rows_processed_total{{customer="{KDV}", product="flexkids", '
            f'rule="{INVOICE_RULE}", action="delete"}})'
        )
        poll(
            lambda: [v for _, v in prom.query(processed) if v == EXPIRED],
            60,
            f"{processed} == {EXPIRED} in Prometheus\n{worker.tail()}",
        )
        applied = sum(
            line["rows_total"] for line in worker.events("batch.applied", rule=INVOICE_RULE)
        )
        assert applied == EXPIRED

        # The unreachable database: pending first, then firing, for that pair only.
        firing = poll(
            lambda: alerts_named(prom, "RetentionConnectorDown", "firing"),
            45,
            f"RetentionConnectorDown firing\n{prom.tail()}",
        )
        assert [(a["labels"]["customer"], a["labels"]["product"]) for a in firing] == [
            (VL, "konnect")
        ]
        assert (
            firing[0]["annotations"]["runbook_url"] == "docs/operations.md#retentionconnectordown"
        )
        assert float(firing[0]["value"]) == 0
        # Prometheus records each state of an alert in its ALERTS series: it was pending first.
        was = {
            labels["alertstate"]: value
            for labels, value in prom.query(
                "max by (alertstate) "
                '(max_over_time(ALERTS{alertname="RetentionConnectorDown"}[5m]))'
            )
        }
        assert was == {"pending": 1.0, "firing": 1.0}
        alert = 'ALERTS{alertname="RetentionConnectorDown", alertstate="%s"}'
        started_pending = prom.first_sample_time(alert % "pending")
        started_firing = prom.first_sample_time(alert % "firing")
        assert started_pending is not None and started_firing is not None
        assert started_pending < started_firing

        # The same failing pair is RetentionPairFailing (its failed-runs counter started at 1);
        # the healthy pairs raise nothing.
        failing = poll(
            lambda: alerts_named(prom, "RetentionPairFailing", "firing"), 30, "RetentionPairFailing"
        )
        assert [(a["labels"]["customer"], a["labels"]["product"]) for a in failing] == [
            (VL, "konnect")
        ]
        others = {
            (a["labels"]["alertname"], a["labels"].get("customer"), a["labels"].get("product"))
            for a in prom.alerts()
        } - {("RetentionConnectorDown", VL, "konnect"), ("RetentionPairFailing", VL, "konnect")}
        assert others == set()
    finally:
        prom.stop()
        code = worker.stop()
    assert code == 0, worker.tail()
