"""Raw SQL for tests that build their own tables (the foreign-key tests): statements run in
one transaction, and what a table holds afterwards."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

Step = str | tuple[str, Sequence[Mapping[str, Any]]]
"""A statement, or a statement with the parameter sets it runs with (once per set)."""


def execute(url: str, *steps: Step) -> None:
    """Run every step in one transaction on the database of `url`."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for step in steps:
                text, params = (step, [{}]) if isinstance(step, str) else step
                for values in params:
                    conn.execute(sa.text(text), dict(values))
    finally:
        engine.dispose()


def ids(url: str, table: str) -> set[int]:
    """The `id` of every row of `table`."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {int(r[0]) for r in conn.execute(sa.text(f"SELECT id FROM {table}"))}
    finally:
        engine.dispose()


def count(url: str, table: str) -> int:
    """The rows of `table`."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()
