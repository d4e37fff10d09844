"""One engine and one reflected schema per product database per process (connectors.engines).

Customers of one shared database use one engine; a warm reflection never hides drift (a
column dropped or changed by another session between two runs fails the next run with the
schema-drift error, on SQLite, PostgreSQL and MariaDB, and a column put back is seen again);
a configuration reload and a changed URL close the engines no pair uses any more.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from connectors.engines import Engines
from connectors.sql import SqlConnector
from demo.schemas import create_schema
from tests.rows import flexkids_row
from tests.support import NOW, PEPPER, copy_config, edit_config, fixture_config, insert, snapshot
from worker.app import ConnectorFactory, build_runner, run_pairs
from worker.audit import AuditTrail
from worker.configload import Config
from worker.daemon import Daemon
from worker.events import EventBus, Outcome
from worker.runreport import RunReport
from worker.settings import Settings
from worker.state import StateStore

KDV, VL = "kdv-zonnestraal", "bso-de-vlinder"
TENANT = {KDV: 1042, VL: 2077}


def _run(
    config: Config,
    env: dict[str, str],
    engines: Engines,
    state: StateStore,
    customer: str,
    reuse: float = 0.0,
    *,
    dry_run: bool = False,
) -> RunReport:
    """One run of `customer` × flexkids, as `run --once` does; it may borrow a schema check
    at most `reuse` seconds old (worker/drift.py)."""
    bus = EventBus()
    bus.subscribe(AuditTrail(state, lambda: NOW), required=True)
    runner = build_runner(
        config,
        env,
        bus,
        pepper=PEPPER,
        clock=lambda: NOW,
        store=state,
        engines=engines,
        schema_reuse_seconds=reuse,
    )
    pairs = [(c, p) for c, p in config.pairs() if (c.customer, p.product) == (customer, "flexkids")]
    (report,) = run_pairs(runner, pairs, NOW, dry_run=dry_run)
    return report


def _alter(url: str, statement: str) -> None:
    """Another session changes the schema (not the worker's engine)."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def seed_flexkids(url: str) -> dict[str, str]:
    """The shared FlexKids database of both customers, with one expired invoice each."""
    create_schema(url, "flexkids")
    insert(
        url,
        "invoice",
        [
            flexkids_row("invoice", 1 + n, TENANT[c], dt.date(2015, 1, 1))
            for n, c in enumerate(TENANT)
        ],
    )
    return {"FLEXKIDS_DATABASE_URL": url}


@pytest.fixture
def flexkids(any_db_url: str) -> Iterator[dict[str, str]]:
    """The shared FlexKids database of both customers, with one expired invoice each."""
    yield seed_flexkids(any_db_url)


def test_customers_of_one_shared_database_share_one_engine_and_schema(
    flexkids: dict[str, str], state: StateStore
) -> None:
    config, engines = fixture_config(), Engines()
    factory = ConnectorFactory(flexkids, PEPPER, engines)
    pairs = {c.customer: (c, p) for c, p in config.pairs() if p.product == "flexkids"}
    first, second = factory(*pairs[KDV]), factory(*pairs[VL])
    assert isinstance(first, SqlConnector) and isinstance(second, SqlConnector)
    first.open()
    second.open()
    try:
        assert first.engine is second.engine
        assert len(engines) == 1
        names = ["invoice", "parent"]
        reflected = engines.survey(first.engine_key, first.engine, names).reflected
        assert engines.survey(second.engine_key, second.engine, names).reflected is reflected
    finally:
        first.close()
        second.close()
    # close() hands the connections back: the engine stays for the next run.
    assert first.engine_key in engines
    before = snapshot(flexkids["FLEXKIDS_DATABASE_URL"])
    for customer in (KDV, VL):
        report = _run(config, flexkids, engines, state, customer)
        assert report.outcome is Outcome.SUCCEEDED, report.error
        assert report.changed == 1
    assert len(engines) == 1
    after = snapshot(flexkids["FLEXKIDS_DATABASE_URL"])
    assert set(before["invoice"]) - set(after["invoice"]) == {(1,), (2,)}
    assert {t: rows for t, rows in after.items() if t != "invoice"} == {
        t: rows for t, rows in before.items() if t != "invoice"
    }


def test_a_warm_run_reflects_no_table_again(flexkids: dict[str, str], state: StateStore) -> None:
    """A pair verifies its subject tables set by set; every set stays served from the
    process's reflection, so the second customer's run reads no column from the catalog
    (it used to reflect each rule's table again after the last set replaced the others)."""
    config, engines = fixture_config(), Engines()
    reflected: list[str] = []

    def seen(_inspector: object, table: sa.Table, _column: object) -> None:
        reflected.append(table.name)

    first = _run(config, flexkids, engines, state, KDV)
    assert first.outcome is Outcome.SUCCEEDED, first.error
    sa.event.listen(sa.Table, "column_reflect", seen)
    try:
        second = _run(config, flexkids, engines, state, VL)
    finally:
        sa.event.remove(sa.Table, "column_reflect", seen)
    assert second.outcome is Outcome.SUCCEEDED, second.error
    assert second.changed == 1
    assert len(config.products["flexkids"].subjects) > 1  # several sets were verified
    assert reflected == []


def test_a_column_dropped_after_the_cache_is_warm_fails_the_next_run(
    flexkids: dict[str, str], state: StateStore
) -> None:
    config, engines = fixture_config(), Engines()
    url = flexkids["FLEXKIDS_DATABASE_URL"]
    assert _run(config, flexkids, engines, state, KDV).outcome is Outcome.SUCCEEDED
    _alter(url, "ALTER TABLE invoice DROP COLUMN iban")
    before = snapshot(url)
    report = _run(config, flexkids, engines, state, VL)  # same engine, warm reflection
    assert len(engines) == 1
    assert report.outcome is Outcome.FAILED
    assert report.error is not None
    assert "does not match" in report.error and "invoice.iban" in report.error
    assert "column is missing from the table" in report.error
    assert snapshot(url) == before  # nothing changed: the expired invoice of VL is still there
    _alter(url, "ALTER TABLE invoice ADD COLUMN iban VARCHAR(34)")
    report = _run(config, flexkids, engines, state, VL)
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert report.changed == 1


# SQLite cannot change a column's type in place (its dropped columns are tested above).
@pytest.mark.parametrize(
    "url_fixture",
    [
        pytest.param("pg_url", id="postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb_url", id="mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_a_column_type_changed_after_the_cache_is_warm_fails_the_next_run(
    request: pytest.FixtureRequest, url_fixture: str, state: StateStore
) -> None:
    flexkids = seed_flexkids(request.getfixturevalue(url_fixture))
    url = flexkids["FLEXKIDS_DATABASE_URL"]
    dialect = sa.make_url(url).get_backend_name()
    config, engines = fixture_config(), Engines()
    assert _run(config, flexkids, engines, state, KDV).outcome is Outcome.SUCCEEDED
    change = {
        "postgresql": "ALTER TABLE invoice ALTER COLUMN invoice_date TYPE VARCHAR(10)",
        "mysql": "ALTER TABLE invoice MODIFY invoice_date VARCHAR(10) NOT NULL",
    }[dialect]
    _alter(url, change)
    report = _run(config, flexkids, engines, state, VL)
    assert report.outcome is Outcome.FAILED
    assert report.error is not None
    assert "invoice.invoice_date" in report.error
    assert "a time basis must be a DATE or TIMESTAMP column" in report.error


def test_a_reload_closes_the_engines_no_pair_uses_any_more(tmp_path: Path) -> None:
    env = {
        "FLEXKIDS_DATABASE_URL": f"sqlite:///{tmp_path / 'flexkids.db'}",
        "KONNECT_ZONNESTRAAL_DATABASE_URL": f"sqlite:///{tmp_path / 'konnect-kdv.db'}",
        "KONNECT_DE_VLINDER_DATABASE_URL": f"sqlite:///{tmp_path / 'konnect-vl.db'}",
    }
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore(state_url).migrate()
    config_dir = copy_config(tmp_path)
    settings = Settings(config_dir=config_dir, state_url=state_url, http_port=0, pepper=PEPPER)
    daemon = Daemon(settings, env, config_dir, clock=lambda: NOW)
    daemon.engines = Engines()
    try:
        assert daemon.load() is True
        assert daemon.config is not None
        factory = ConnectorFactory(env, PEPPER, daemon.engines)
        keys = {}
        for customer, mapping in daemon.config.pairs():
            connector = factory(customer, mapping)
            assert isinstance(connector, SqlConnector)
            connector.open()
            connector.close()
            keys[(customer.customer, mapping.product)] = connector.engine_key
        assert len(daemon.engines) == 3  # one shared FlexKids database, two Konnect ones
        edit_config(
            config_dir,
            "customers/bso-de-vlinder.yaml",
            "  konnect:\n    database: {url_env: KONNECT_DE_VLINDER_DATABASE_URL}\n"
            "    settings: {months: 6}\n",
            "",
        )
        assert daemon.load() is True
        assert keys[(VL, "konnect")] not in daemon.engines
        assert keys[(KDV, "konnect")] in daemon.engines
        assert keys[(VL, "flexkids")] == keys[(KDV, "flexkids")] in daemon.engines
        assert len(daemon.engines) == 2
    finally:
        daemon.engines.dispose()
        if daemon.scheduler.running:
            daemon.scheduler.shutdown(wait=False)
    assert len(daemon.engines) == 0


def test_a_changed_url_closes_the_engine_of_the_old_one(tmp_path: Path) -> None:
    config, engines = fixture_config(), Engines()
    pair = next((c, p) for c, p in config.pairs() if c.customer == KDV and p.product == "konnect")
    keys = []
    for name in ("old.db", "new.db"):
        env = {"KONNECT_ZONNESTRAAL_DATABASE_URL": f"sqlite:///{tmp_path / name}"}
        connector = ConnectorFactory(env, PEPPER, engines)(*pair)
        assert isinstance(connector, SqlConnector)
        connector.open()
        connector.close()
        keys.append(connector.engine_key)
    assert keys[0] != keys[1]
    assert keys[0] not in engines and keys[1] in engines


def test_the_least_recently_used_engine_goes_beyond_the_limit(tmp_path: Path) -> None:
    engines = Engines(limit=2)
    connectors = [
        SqlConnector(f"sqlite:///{tmp_path / f'{n}.db'}", pepper=PEPPER, engines=engines)
        for n in range(3)
    ]
    for connector in connectors:
        connector.open()
        connector.close()
    assert [c.engine_key in engines for c in connectors] == [False, True, True]
