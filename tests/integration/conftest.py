"""Fixtures for integration tests: the shipped configuration over real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests import dbs
from tests.support import product_env, schemas
from worker.state import StateStore


@pytest.fixture
def product_dbs(pg_server_url: str) -> Iterator[dict[str, str]]:
    """Three fresh PostgreSQL databases with the reference schemas: the shared FlexKids
    database and one Konnect database per customer, as an environment mapping."""
    with ExitStack() as stack:
        urls = [stack.enter_context(dbs.postgres_database(pg_server_url)) for _ in range(3)]
        env = product_env(*urls)
        schemas(env)
        yield env


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    """A migrated state database (SQLite) for one test."""
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    yield store
    store.close()
