"""Where customers are never asked together (worker/together.py), the tick is the one of
customers counting alone, and looking for customers to ask with costs little.

SQLite and MariaDB: no joint statement is ever sent; the tick decides, changes and
publishes as with RETENTION_SCHEMA_REUSE_SECONDS=0. A database per customer (one mapping,
no two customers on one database): nobody to ask with. In both, the lookahead (the
following customers' connectors and targets) is not made again for every customer: with
N customers, at most about N connectors and LOOKAHEAD targets beyond the runs' own, not
N × LOOKAHEAD targets or N²/2 connectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration import together_support as ts
from tests.integration.own_config import write_config
from worker import app
from worker.state import StateStore
from worker.together import LOOKAHEAD

OLD, RECENT = "2019-01-01", "2026-10-01"


def _seed(url: str, tenants: range, due: set[int]) -> None:
    rows = [{"id": t, "org": t, "left_on": RECENT} for t in tenants]
    rows += [{"id": 100_000 + t, "org": t, "left_on": OLD} for t in sorted(due)]
    ts.execute(
        url,
        "DROP TABLE IF EXISTS child",
        "CREATE TABLE child (id integer PRIMARY KEY, org integer NOT NULL, "
        "name varchar(50), left_on date)",
        "INSERT INTO child (id, org, left_on) VALUES (:id, :org, :left_on)",
        params=rows,
    )


class Calls:
    """How many connectors the runner's factory made, and lookahead targets computed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.connectors = self.targets = 0
        make, targets = app.ConnectorFactory.__call__, app.rule_targets

        def counted_make(factory: Any, *args: Any) -> Any:
            self.connectors += 1
            return make(factory, *args)

        def counted_targets(*args: Any) -> Any:
            self.targets += 1  # app.rule_targets: the lookahead's only (runs use rulework's)
            return targets(*args)

        monkeypatch.setattr(app.ConnectorFactory, "__call__", counted_make)
        monkeypatch.setattr(app, "rule_targets", counted_targets)


@pytest.mark.parametrize("any_db_url", ["sqlite", "mariadb"], indirect=True)
def test_sqlite_and_mariadb_are_never_asked_together_and_decide_as_alone(
    tmp_path: Path, any_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 2 * LOOKAHEAD + 30
    tenants, due = range(1, n + 1), {1, 2, 200, n}
    customers = {f"c{t:04d}": ts.customer_text(str(t)) for t in tenants}
    config = ts.config_of(tmp_path / "config", ts.SIMPLE, customers)
    calls = Calls(monkeypatch)
    together, alone = ts.both_ticks(
        tmp_path, any_db_url, lambda: _seed(any_db_url, tenants, due), config
    )
    ts.assert_equivalent(together, alone)
    assert together.joint == 0
    assert together.counts == alone.counts == n
    assert {c for c, r in together.reports.items() if r.changed} == {f"c{t:04d}/kids" for t in due}
    # The lookahead is made once, not again for every customer (n × LOOKAHEAD).
    assert calls.targets <= LOOKAHEAD
    assert calls.connectors <= 3 * n  # each tick's own (2 n) and the lookahead's (n)


PER_CUSTOMER = (
    """\
product: kids
tenancy: {per_customer: true}
"""
    + ts.SIMPLE
)


def test_a_database_per_customer_costs_no_connector_per_pair_of_customers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 120
    env, customers = {}, {}
    for t in range(1, n + 1):
        url = f"sqlite:///{tmp_path / f'kids-{t}.db'}"
        env[f"KIDS_{t}_URL"] = url
        left = OLD if t % 40 == 0 else RECENT
        ts.execute(
            url,
            "CREATE TABLE child (id integer PRIMARY KEY, name varchar(50), left_on date)",
            f"INSERT INTO child (id, left_on) VALUES (1, '{RECENT}'), (2, '{left}')",
        )
        customers[f"c{t:04d}"] = f"products:\n  kids:\n    database: {{url_env: KIDS_{t}_URL}}\n"
    config = write_config(tmp_path / "config", PER_CUSTOMER, customers, ts.CATALOGUE)
    calls = Calls(monkeypatch)
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    try:
        reports = ts.tick(config, env, store)
    finally:
        store.close()
    assert {c for c, r in reports.items() if r.changed} == {
        f"c{t:04d}/kids" for t in range(40, n + 1, 40)
    }
    assert calls.connectors <= 2 * n  # not n²/2 (the lookahead's, one per pair after each)
    assert calls.targets == 0  # nobody shares a database
