"""Fixtures for integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.state import StateStore


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    """A migrated state database (SQLite) for one test."""
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.migrate()
    yield store
    store.close()
