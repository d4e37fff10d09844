"""Customers asked together (worker/together.py) in sets of every size and order, on
PostgreSQL: more customers than one statement (100) and one lookahead (199) hold, with rows
due at the edges of each; customers of another product on the very same database, and of
another database, interleaved with them; a customer listed twice; a single customer. Each
tick together must decide, change and publish as the tick alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import dbs
from tests.integration import together_support as ts
from tests.support import NOW
from worker.configload import load_config

pytestmark = pytest.mark.postgres

OLD, RECENT = "2019-01-01", "2026-10-01"
OTHER = """\
product: other
database: {url_env: OTHER_DATABASE_URL}
tenancy: {column: org}
subjects:
  child:
    kind: child
    table: child
    key: [id]
    columns: {name: name}
    dates: {left: left_on}
rules:
  - id: other.child.left
    subject: child
    after: {date: left, period: 12m}
    action: delete
"""
CATALOGUE = (
    ts.CATALOGUE
    + """\
  other:
    label: Other
    annex: A.10
    processes:
      child: [name]
"""
)


def _seed(url: str, tenants: range, due: set[int]) -> None:
    rows = [{"id": t, "org": t, "left_on": RECENT} for t in tenants]
    rows += [{"id": 100_000 + t, "org": t, "left_on": OLD} for t in sorted(due)]
    ts.execute(
        url,
        "DROP TABLE IF EXISTS child",
        "CREATE TABLE child (id integer PRIMARY KEY, org integer NOT NULL, "
        "name varchar(50), left_on date)",
        "INSERT INTO child (id, org, left_on) VALUES (:id, :org, CAST(:left_on AS date))",
        params=rows,
    )


@pytest.mark.parametrize("size", [101, 202, 450])
def test_more_customers_than_a_statement_and_a_lookahead_hold(
    tmp_path: Path, pg_url: str, size: int
) -> None:
    tenants = range(1, size + 1)
    due = {t for t in (1, 2, 99, 100, 101, 199, 200, 201, 202, 399, 400, 450) if t <= size}
    customers = {f"c{t:04d}": ts.customer_text(str(t)) for t in tenants}
    config = ts.config_of(tmp_path / "config", ts.SIMPLE, customers)
    together, alone = ts.both_ticks(tmp_path, pg_url, lambda: _seed(pg_url, tenants, due), config)
    ts.assert_equivalent(together, alone)
    assert {c for c, r in together.reports.items() if r.changed} == {f"c{t:04d}/kids" for t in due}
    assert together.joint == ts.joint_statements(size)  # 8, 15, 29, 57, 113, 200, ... a check
    assert together.counts == len(due)


def _two_products(tmp_path: Path, kids: str, other: str) -> Any:
    """Twelve customers of both products; `other`'s URL may be `kids`' own."""
    root = tmp_path / "config"
    ts.config_of(root, ts.SIMPLE, {f"c{t:02d}": ts.customer_text(str(t)) for t in range(1, 13)})
    (root / "catalogue.yaml").write_text(CATALOGUE, encoding="utf-8")
    (root / "products" / "other.yaml").write_text(OTHER, encoding="utf-8")
    for t in range(1, 13):
        path = root / "customers" / f"c{t:02d}.yaml"
        text = path.read_text(encoding="utf-8")
        path.write_text(text + f"  other:\n    tenant: {t}\n", encoding="utf-8")
    config = load_config(root)
    config.raise_for_problems()
    return config


@pytest.mark.parametrize("same_database", [True, False], ids=["same-db", "other-db"])
def test_customers_of_two_products_interleaved(
    tmp_path: Path, pg_url: str, pg_server_url: str, same_database: bool
) -> None:
    with dbs.postgres_database(pg_server_url) as second:
        other_url = pg_url if same_database else second
        config = _two_products(tmp_path, pg_url, other_url)
        kids_due, other_due = {3, 4, 12}, {1, 5, 6}
        pairs = list(config.pairs())
        pairs.sort(key=lambda p: (p[0].customer, p[1].product))  # c01 kids, c01 other, …

        def seed() -> None:
            if same_database:  # one table: the two products read the same rows
                _seed(pg_url, range(1, 13), kids_due | other_due)
            else:
                _seed(pg_url, range(1, 13), kids_due)
                _seed(other_url, range(1, 13), other_due)

        env = {"OTHER_DATABASE_URL": other_url}
        results = []
        for label, reuse in (("together", ts.REUSE), ("alone", 0.0)):
            seed()
            results.append(_tick_env(tmp_path, label, config, pg_url, env, reuse, pairs))
        together, alone = results
        assert together == alone
        assert together[0], "something must have changed"


def _tick_env(
    tmp_path: Path,
    label: str,
    config: Any,
    url: str,
    env: dict[str, str],
    reuse: float,
    pairs: list[Any],
) -> tuple[Any, ...]:
    from worker.state import StateStore

    store = StateStore(f"sqlite:///{tmp_path / f'{label}.db'}")
    store.migrate()
    recorder = ts.Recorder()
    try:
        reports = ts.tick(
            config, {ts.ENV: url, **env}, store, reuse=reuse, recorder=recorder, pairs=pairs
        )
    finally:
        store.close()
    changed = sorted(c for c, r in reports.items() if r.changed)
    rows = ts.snapshot(url), ts.snapshot(env["OTHER_DATABASE_URL"])
    return changed, ts.figures(reports), rows, recorder.trail()


def test_a_customer_listed_twice_and_a_single_customer(tmp_path: Path, pg_url: str) -> None:
    tenants = range(1, 9)
    due = {2, 5}
    customers = {f"c{t}": ts.customer_text(str(t)) for t in tenants}
    config = ts.config_of(tmp_path / "config", ts.SIMPLE, customers)
    pairs = list(config.pairs())
    twice = [pairs[1], *pairs, pairs[4], pairs[1]]
    together, alone = ts.both_ticks(
        tmp_path, pg_url, lambda: _seed(pg_url, tenants, due), config, pairs=twice
    )
    ts.assert_equivalent(together, alone)
    one = ts.one_tick(
        tmp_path,
        "one",
        pg_url,
        lambda: _seed(pg_url, tenants, due),
        config,
        reuse=ts.REUSE,
        pairs=[pairs[1]],
    )
    assert one.joint == 0 and one.counts == 1
    assert NOW  # the tick's instant, as in every tick
