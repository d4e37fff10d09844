"""Instants compared in UTC whatever the session: the connector pins its sessions.

The product URL puts the session in another zone (PostgreSQL `?options=-c TimeZone=…`,
MariaDB `?init_command=SET time_zone=…, sql_mode=''`), as a server default or `SET GLOBAL`
would. The rows a run deletes are still exactly those before the UTC cutoff, for DATE, naive
TIMESTAMP/DATETIME and aware timestamptz/MariaDB TIMESTAMP columns; a value written (the
year mask on an aware timestamp) is in UTC; and MariaDB's strict SQL mode refuses a value
that does not fit instead of truncating it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.base import Timeouts
from connectors.sql import SqlConnector
from tests.integration.own_config import execute, write_config
from tests.support import PEPPER, run_once
from worker.events import Outcome
from worker.state import StateStore

ENV_NAME = "KIDS_DATABASE_URL"
# Cutoff: 2025-11-28 for a DATE; 2025-11-27 23:00 UTC for an instant (see test_odd_dates).
ROWS = {  # id → (left_on, seen_at and seen_tz as UTC wall-clock text)
    1: ("2025-11-27", "2025-11-27 22:59:59"),
    2: ("2025-11-28", "2025-11-27 23:00:00"),
    3: ("2020-01-01", "2020-01-01 00:00:00"),
    4: ("2026-01-01", "2026-01-01 00:00:00"),
}
EXPIRED = {1, 3}
PG_ZONE = "Pacific/Kiritimati"  # UTC+14
MARIADB_ZONE = "+05:00"


def other_zone(url: str) -> str:
    """`url` with an option that puts each new session in another zone (and JIT on, on
    PostgreSQL; non-strict SQL mode on MariaDB)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        query = {"options": f"-c TimeZone={PG_ZONE} -c jit=on"}
    else:
        query = {"init_command": f"SET SESSION time_zone = '{MARIADB_ZONE}', sql_mode = ''"}
    return parsed.update_query_dict(query).render_as_string(hide_password=False)


def create(url: str) -> None:
    """person(id, tenant, name VARCHAR(8), left_on DATE, seen_at naive, seen_tz aware), with
    every instant written in UTC."""
    if sa.make_url(url).get_backend_name() == "postgresql":
        naive, aware, utc = "TIMESTAMP", "TIMESTAMPTZ", ["SET TimeZone = 'UTC'"]
    else:
        naive, aware, utc = "DATETIME", "TIMESTAMP NULL", ["SET SESSION time_zone = '+00:00'"]
    execute(
        url,
        "CREATE TABLE person (id INTEGER PRIMARY KEY, tenant INTEGER NOT NULL, "
        f"name VARCHAR(8), left_on DATE, seen_at {naive}, seen_tz {aware})",
    )
    execute(
        url,
        *utc,
        *(
            f"INSERT INTO person VALUES ({i}, 1, 'Kind {i}', '{day}', '{at}', '{at}')"
            for i, (day, at) in ROWS.items()
        ),
    )


def product(column: str, action: str = "action: delete") -> str:
    return f"""\
        product: kids
        database: {{url_env: KIDS_DATABASE_URL}}
        tenancy: {{column: tenant}}
        subjects:
          person:
            kind: child
            table: person
            key: [id]
            columns: {{name: name, seen_tz: birth_date}}
            dates: {{basis: {column}}}
        rules:
          - id: kids.person.gone
            subject: person
            after: {{date: basis, period: 12m}}
            {action}
        """


CUSTOMER = {"one": "timezone: Europe/Amsterdam\nproducts:\n  kids:\n    tenant: 1\n"}


def ids(url: str) -> set[int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text("SELECT id FROM person")).scalars())
    finally:
        engine.dispose()


@pytest.fixture(params=[pytest.param("pg_url", marks=pytest.mark.postgres), "mariadb_url"])
def server_url(request: pytest.FixtureRequest) -> str:
    """A fresh PostgreSQL or MariaDB database (the backends with a session time zone)."""
    url: str = request.getfixturevalue(request.param)
    return url


@pytest.mark.mariadb
@pytest.mark.parametrize("column", ["left_on", "seen_at", "seen_tz"])
def test_rows_changed_are_those_before_the_utc_cutoff(
    server_url: str, tmp_path: Path, state: StateStore, column: str
) -> None:
    """With the URL's session in another zone, a run deletes exactly the rows before the UTC
    cutoff, whatever the kind of time basis column."""
    create(server_url)
    config = write_config(tmp_path, product(column), CUSTOMER)

    [report] = run_once(config, {ENV_NAME: other_zone(server_url)}, state)

    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert ids(server_url) == set(ROWS) - EXPIRED


@pytest.mark.mariadb
def test_sessions_are_pinned_whatever_the_url_says(server_url: str) -> None:
    """Every session the connector opens runs in UTC (and strict SQL mode on MariaDB), though
    a plain session on the same URL runs in the URL's zone."""
    url = other_zone(server_url)
    postgres = sa.make_url(url).get_backend_name() == "postgresql"
    query = "SHOW TimeZone" if postgres else "SELECT @@session.time_zone"
    plain = sa.create_engine(url)
    try:
        with plain.connect() as conn:
            assert conn.execute(sa.text(query)).scalar() == (PG_ZONE if postgres else MARIADB_ZONE)
    finally:
        plain.dispose()
    connector = SqlConnector(url, pepper=PEPPER, timeouts=Timeouts(7, 90))
    connector.open()
    try:
        with connector.engine.connect() as conn:
            assert conn.execute(sa.text(query)).scalar() == ("UTC" if postgres else "+00:00")
            if postgres:
                assert conn.execute(sa.text("SHOW lock_timeout")).scalar() == "7s"
                assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "90s"
                # JIT compiling cost more than running the worker's selections (bench/).
                assert conn.execute(sa.text("SHOW jit")).scalar() == "off"
            else:
                mode = conn.execute(sa.text("SELECT @@session.sql_mode")).scalar()
                assert set(str(mode).split(",")) >= {
                    "STRICT_ALL_TABLES",
                    "NO_ZERO_DATE",
                    "NO_ZERO_IN_DATE",
                    "ERROR_FOR_DIVISION_BY_ZERO",
                    "NO_ENGINE_SUBSTITUTION",
                }
                found = conn.execute(
                    sa.text(
                        "SELECT @@session.lock_wait_timeout, @@session.innodb_lock_wait_timeout, "
                        "@@session.max_statement_time"
                    )
                ).one()
                assert tuple(found) == (7, 7, 90.0)
    finally:
        connector.close()


@pytest.mark.mariadb
def test_a_value_written_is_in_utc(server_url: str, tmp_path: Path, state: StateStore) -> None:
    """The year mask on an aware timestamp writes 1 January 00:00 UTC of the UTC year, also
    when the URL's session runs at UTC+14 or UTC+5."""
    create(server_url)
    execute(server_url, "UPDATE person SET seen_tz = NULL WHERE id <> 3")
    postgres = sa.make_url(server_url).get_backend_name() == "postgresql"
    execute(
        server_url,
        *(["SET TimeZone = 'UTC'"] if postgres else ["SET SESSION time_zone = '+00:00'"]),
        "UPDATE person SET seen_tz = '2019-12-31 12:00:00' WHERE id = 3",
    )
    action = "action: anonymise\n            with: {seen_tz: year}"
    config = write_config(tmp_path, product("left_on", action), CUSTOMER)

    [report] = run_once(config, {ENV_NAME: other_zone(server_url)}, state)

    assert report.outcome is Outcome.SUCCEEDED, report.error
    engine = sa.create_engine(server_url)
    try:
        with engine.connect() as conn:
            conn.execute(
                sa.text("SET TimeZone = 'UTC'" if postgres else "SET time_zone = '+00:00'")
            )
            value = conn.execute(sa.text("SELECT seen_tz FROM person WHERE id = 3")).scalar()
    finally:
        engine.dispose()
    assert value is not None
    assert value.replace(tzinfo=None) == dt.datetime(2019, 1, 1)
    assert value.utcoffset() in (None, dt.timedelta(0))


def test_strict_mode_refuses_a_value_that_does_not_fit(
    mariadb_url: str, tmp_path: Path, state: StateStore
) -> None:
    """MariaDB, URL in non-strict mode: a fixed text longer than its column fails the batch
    (rolled back) instead of being cut short silently."""
    create(mariadb_url)
    action = 'action: anonymise\n            with: {name: {fixed: "anonymised"}}'
    config = write_config(tmp_path, product("left_on", action), CUSTOMER)

    [report] = run_once(config, {ENV_NAME: other_zone(mariadb_url)}, state)

    assert report.outcome is Outcome.FAILED
    assert "DataError [errno 1406, SQLSTATE 22001]: data too long; column name" in (
        report.error or ""
    )
    engine = sa.create_engine(mariadb_url)
    try:
        with engine.connect() as conn:
            names = conn.execute(sa.text("SELECT name FROM person ORDER BY id")).scalars().all()
    finally:
        engine.dispose()
    assert names == [f"Kind {i}" for i in ROWS]
