"""Shared fixtures: real databases for integration and contract tests.

- ``pg_server_url`` (session) / ``pg_url`` (a fresh empty PostgreSQL database per test)
- ``mariadb_server_url`` (session) / ``mariadb_url`` (a fresh empty MariaDB database per test)
- ``sqlite_url`` (a SQLite file in the test's tmp_path)
- ``any_db_url`` (parametrized over sqlite, postgresql and mariadb, for contract tests)

Tests using a PostgreSQL or MariaDB fixture get the ``postgres`` / ``mariadb`` marker, so
``pytest -m "not postgres and not mariadb"`` runs without servers. How servers are found, the
throwaway PostgreSQL and the environment overrides are described in ``tests/dbs.py``.

The tests build their own configuration (``tests/fixtures/config``, see ``tests/support.py``):
the shipped ``config/`` is an example that customers edit freely. A test that opens a file
under ``config/`` fails, unless it is marked ``shipped_config`` (it then may assert only what
every valid configuration keeps: that it loads, that the demo can seed it).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests import dbs
from tests.support import REPO, product_env, schemas

_PG_FIXTURES = {"pg_server_url", "pg_url"}
_MARIADB_FIXTURES = {"mariadb_server_url", "mariadb_url"}

_SHIPPED = str(REPO / "config") + os.sep
_guard: dict[str, Any] = {"on": False, "read": None}
_READS_SHIPPED = (
    "tests use their own configuration (tests.support.FIXTURE_CONFIG, copy_config), never "
    "the shipped config/, which customers edit; or mark the test shipped_config and assert "
    "only what every valid configuration keeps"
)


def _refuse_shipped_config(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook: a test that opens a file of the shipped config/ fails (in any thread)."""
    if event != "open" or not _guard["on"] or not args or isinstance(args[0], int):
        return
    try:
        path = os.path.abspath(os.fsdecode(args[0]))  # noqa: PTH100  (no I/O in an audit hook)
    except (TypeError, ValueError):
        return
    if path.startswith(_SHIPPED):
        if threading.current_thread() is not threading.main_thread():
            _guard["read"] = _guard["read"] or path  # reported when the test ends
        pytest.fail(f"this test reads {path}: {_READS_SHIPPED}", pytrace=False)


sys.addaudithook(_refuse_shipped_config)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "shipped_config: may read the shipped config/ (asserting only what any valid "
        "customer edit keeps)",
    )


@pytest.fixture(autouse=True)
def _no_shipped_config(request: pytest.FixtureRequest) -> Iterator[None]:
    """Turn the shipped-config guard on for the test, unless it is marked shipped_config."""
    _guard["on"] = request.node.get_closest_marker("shipped_config") is None
    _guard["read"] = None
    try:
        yield
    finally:
        _guard["on"] = False
    if _guard["read"] is not None:  # read in another thread
        pytest.fail(f"this test read {_guard['read']}: {_READS_SHIPPED}", pytrace=False)


@pytest.fixture(autouse=True)
def _default_structlog() -> Iterator[None]:
    """Each test starts and ends with structlog's defaults: a test that ran the CLI in this
    process (`configure_logging`, at RETENTION_LOG_LEVEL=ERROR say) must not filter out the
    lines a later test captures (`structlog.testing.capture_logs`)."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a PostgreSQL or MariaDB server, directly or indirectly."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _PG_FIXTURES:
            item.add_marker(pytest.mark.postgres)
        if names & _MARIADB_FIXTURES:
            item.add_marker(pytest.mark.mariadb)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server for the session (local, else a throwaway one)."""
    with dbs.postgres_server() as url:
        yield url


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    with dbs.postgres_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def mariadb_server_url() -> str:
    """URL of the MariaDB server for the session."""
    return dbs.mariadb_server()


@pytest.fixture
def mariadb_url(mariadb_server_url: str) -> Iterator[str]:
    """URL of a fresh, empty MariaDB database, dropped after the test."""
    with dbs.mariadb_database(mariadb_server_url) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite database file in this test's temporary folder."""
    return f"sqlite:///{tmp_path / 'product.db'}"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
    ]
)
def any_db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database URL of each supported kind, for contract tests."""
    fixture = {"sqlite": "sqlite_url", "postgresql": "pg_url", "mariadb": "mariadb_url"}
    url = request.getfixturevalue(fixture[request.param])
    assert isinstance(url, str)
    return url


@pytest.fixture
def product_dbs(pg_server_url: str) -> Iterator[dict[str, str]]:
    """Three fresh PostgreSQL databases with the reference schemas: the shared FlexKids
    database and one Konnect database per customer, as an environment mapping."""
    with ExitStack() as stack:
        urls = [stack.enter_context(dbs.postgres_database(pg_server_url)) for _ in range(3)]
        env = product_env(*urls)
        schemas(env)
        yield env
