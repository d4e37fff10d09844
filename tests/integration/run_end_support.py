"""Fixtures shared by the tests of a run's end in the state database (its folded checkpoint
and lease end, optional bookkeeping, refusals): a state store on every state backend
(`state_url`) and a SQLite product database seeded by tests/integration/test_timeouts.py.
Imported by name into each test module (pytest finds them there)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_timeouts import seed
from worker.state import StateStore


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    """The state store at `state_url` (migrated by that fixture), closed afterwards."""
    found = StateStore(state_url)
    yield found
    found.close()


@pytest.fixture
def product_url(tmp_path: Path) -> str:
    """A seeded SQLite product database in the test's folder."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    seed(url)
    return url
