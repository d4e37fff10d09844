"""Timeouts: settings, per-product overrides, what the connector factory hands on, and how
driver errors are classified (a lock timeout is never retried as transient)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg.errors
import pymysql.err
import pytest
import sqlalchemy.exc as sa_exc

from connectors.base import ConnectorError, LockTimeout, StatementTimeout, Timeouts
from connectors.errors import is_transient, timeout_kind, wrap_errors
from tests.integration.own_config import CATALOGUE
from worker.app import ConnectorFactory
from worker.config import ProductMapping
from worker.configload import load_config
from worker.errors import SettingsError
from worker.settings import Settings

MAPPING: dict[str, Any] = {
    "product": "kids",
    "database": {"url_env": "KIDS_DATABASE_URL"},
    "tenancy": {"column": "org"},
    "subjects": {},
    "rules": [],
}


def test_settings_default_to_30_and_600_seconds() -> None:
    """Without the variables, locks wait 30 s and statements run 600 s at most."""
    settings = Settings.from_env({})
    assert (settings.lock_timeout_seconds, settings.statement_timeout_seconds) == (30, 600)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RETENTION_LOCK_TIMEOUT_SECONDS", "0", "set a whole number from 1 to 3600"),
        ("RETENTION_LOCK_TIMEOUT_SECONDS", "soon", "set a whole number"),
        ("RETENTION_STATEMENT_TIMEOUT_SECONDS", "86401", "set a whole number from 1 to 86400"),
    ],
)
def test_bad_timeout_settings_say_what_to_set(name: str, value: str, message: str) -> None:
    """A timeout setting out of bounds or not a number names the variable and the fix."""
    with pytest.raises(SettingsError, match=message) as caught:
        Settings.from_env({name: value})
    assert name in str(caught.value)


def test_a_product_mapping_overrides_the_settings() -> None:
    """The factory gives each product its own timeouts, else the settings' ones."""
    factory = ConnectorFactory({"RETENTION_LOCK_TIMEOUT_SECONDS": "5"}, pepper=b"p" * 16)
    plain = ProductMapping.model_validate(MAPPING)
    own = ProductMapping.model_validate({**MAPPING, "timeouts": {"statement_seconds": 42}})
    assert factory.timeouts(plain) == Timeouts(lock_seconds=5, statement_seconds=600)
    assert factory.timeouts(own) == Timeouts(lock_seconds=5, statement_seconds=42)


def test_the_factory_hands_the_timeouts_to_the_connector() -> None:
    """The connector built for a product runs its sessions under that product's timeouts."""
    from worker.config import Customer

    factory = ConnectorFactory({"KIDS_DATABASE_URL": "sqlite:///kids.db"}, pepper=b"p" * 16)
    mapping = ProductMapping.model_validate({**MAPPING, "timeouts": {"lock_seconds": 3}})
    customer = Customer.model_validate({"customer": "c", "products": {"kids": {"tenant": 1}}})
    connector = factory(customer, mapping)
    assert getattr(connector, "timeouts", None) == Timeouts(lock_seconds=3, statement_seconds=600)


def test_a_zero_timeout_in_a_product_file_is_a_located_problem(tmp_path: Path) -> None:
    """`timeouts: {lock_seconds: 0}` sets the product aside with a problem at that path."""
    (tmp_path / "products").mkdir()
    (tmp_path / "customers").mkdir()
    (tmp_path / "catalogue.yaml").write_text(CATALOGUE, encoding="utf-8")
    (tmp_path / "products" / "kids.yaml").write_text(
        "product: kids\ndatabase: {url_env: KIDS_DATABASE_URL}\ntenancy: {column: org}\n"
        "subjects: {}\nrules: []\ntimeouts: {lock_seconds: 0}\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path)
    assert "kids" not in config.products
    [problem] = config.problems
    assert "timeouts.lock_seconds" in str(problem)
    assert "line 6" in str(problem)


# --- classification of driver errors -------------------------------------------------------


def wrapped(orig: BaseException) -> sa_exc.DBAPIError:
    return sa_exc.OperationalError("SELECT 1", {}, orig)


def sqlite_error(code: int, text: str) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(text)
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize(
    ("orig", "kind"),
    [
        (psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), LockTimeout),
        (
            psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
            StatementTimeout,
        ),
        (psycopg.errors.QueryCanceled("canceling statement due to user request"), None),
        (pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"), LockTimeout),
        (pymysql.err.OperationalError(1969, "max_statement_time exceeded"), StatementTimeout),
        (pymysql.err.OperationalError(1213, "Deadlock found"), None),
        (sqlite_error(5, "database is locked"), LockTimeout),
        (sqlite_error(9, "interrupted"), StatementTimeout),
        (sqlite_error(1, "no such table"), None),
    ],
    ids=str,
)
def test_timeouts_are_recognised_per_driver(orig: BaseException, kind: type | None) -> None:
    """Lock and statement timeouts of each driver are recognised; other errors are not."""
    assert timeout_kind(wrapped(orig)) is kind


def test_a_lock_timeout_is_not_transient_but_a_deadlock_is() -> None:
    """MariaDB 1205 (lock wait timeout) is not retried; 1213 (deadlock) and 2013 (lost
    connection) are, though pymysql reports SQLSTATE HY000 for them."""
    lock = pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")
    assert not is_transient(wrapped(lock))
    assert is_transient(wrapped(pymysql.err.OperationalError(1213, "Deadlock found")))
    lost = pymysql.err.OperationalError(2013, "Lost connection")
    lost.sqlstate = "HY000"  # type: ignore[attr-defined]
    assert is_transient(wrapped(lost))


def test_a_timeout_message_names_the_table_the_timeout_and_the_fix() -> None:
    """The error says what timed out, after how long, and which setting changes it."""
    orig = pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")
    with (
        pytest.raises(LockTimeout) as caught,
        wrap_errors("cannot delete rows of child", Timeouts(lock_seconds=7)),
    ):
        raise wrapped(orig)
    message = str(caught.value)
    assert message.startswith("cannot delete rows of child: lock timeout")
    assert "(7 s)" in message
    assert "`timeouts: {lock_seconds: N}`" in message
    assert "RETENTION_LOCK_TIMEOUT_SECONDS" in message
    assert isinstance(caught.value, ConnectorError)
    assert caught.value.transient is False
