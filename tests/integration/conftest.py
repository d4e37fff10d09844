"""Fixtures for integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import dbs
from tests.integration import school
from worker.state import StateStore


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a migrated state database, SQLite and PostgreSQL (the kinds it may be)."""
    url = (
        f"sqlite:///{tmp_path / 'state.db'}"
        if request.param == "sqlite"
        else str(request.getfixturevalue("pg_url"))
    )
    store = StateStore(url)
    store.migrate()
    store.close()
    return url


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    """A StateStore on `state_url` (SQLite and PostgreSQL, migrated), closed after the test."""
    found = StateStore(state_url)
    try:
        yield found
    finally:
        found.close()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    """A migrated state database (SQLite) for one test."""
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    yield store
    store.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
    ]
)
def db_pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two fresh, empty databases of one kind (one per customer), for each supported kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
        return
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server_url")
        make = dbs.postgres_database
    else:
        server = request.getfixturevalue("mariadb_server_url")
        make = dbs.mariadb_database
    with make(server) as first, make(server) as second:
        yield first, second


@pytest.fixture
def product_url(tmp_path: Path) -> str:
    """A SQLite product database file for one test."""
    return f"sqlite:///{tmp_path / 'kidsapp.db'}"


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
    ],
)
def school_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database with the school schema per backend, for a whole test module."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('school') / 'school.db'}"
        school.create(url)
        yield url
        return
    if request.param == "postgresql":
        server, make = request.getfixturevalue("pg_server_url"), dbs.postgres_database
    else:
        server, make = request.getfixturevalue("mariadb_server_url"), dbs.mariadb_database
    with make(server) as url:
        school.create(url)
        yield url
