"""The benchmark's data: invoices of the FlexKids reference schema, seeded and checked.

N expired invoices of tenant 1042 (kdv-zonnestraal), N/10 of the same tenant that must be
kept (dated on or after the cutoff) and N/10 expired-looking invoices of another tenant
(2077, bso-de-vlinder) that a run for 1042 must never touch. Rows are shuffled by id, so
expired and kept rows share pages and index ranges, as they would in a product database.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bench.database import BenchError
from demo.schemas import create_schema
from tests.rows import flexkids_row

TENANT = 1042  # kdv-zonnestraal's FlexKids organisation
OTHER_TENANT = 2077  # bso-de-vlinder's: same shared database, never touched by 1042's run
SEED = 20261128


class WrongResult(BenchError):
    """A variant did not remove exactly the rows it should have."""


@dataclass(frozen=True)
class Dataset:
    """The rows to seed and which ids a correct full run removes."""

    rows: Sequence[dict[str, Any]]
    expired: frozenset[int]  # tenant 1042, invoice_date before the cutoff
    all_ids: frozenset[int]


def build_dataset(n: int, cutoff: dt.date) -> Dataset:
    """`n` expired rows, `n // 10` kept rows and `n // 10` rows of the other tenant."""
    kinds = ["expired"] * n + ["kept"] * (n // 10) + ["other"] * (n // 10)
    random.Random(SEED).shuffle(kinds)
    rows: list[dict[str, Any]] = []
    expired: set[int] = set()
    kept = 0
    for i, kind in enumerate(kinds, start=1):
        if kind == "kept":  # the first is dated on the cutoff: rows expire strictly before it
            org, day = TENANT, cutoff + dt.timedelta(days=kept % 365)
            kept += 1
        else:
            org = TENANT if kind == "expired" else OTHER_TENANT
            day = cutoff - dt.timedelta(days=1 + i % 3650)
        if kind == "expired":
            expired.add(i)
        rows.append(flexkids_row("invoice", i, org, day))
    return Dataset(
        rows=rows, expired=frozenset(expired), all_ids=frozenset(range(1, len(kinds) + 1))
    )


def create(url: str) -> None:
    """The whole FlexKids reference schema (the worker verifies every mapped table)."""
    create_schema(url, "flexkids")


def invoice_table(engine: sa.Engine) -> sa.Table:
    return sa.Table("invoice", sa.MetaData(), autoload_with=engine)


def seed(engine: sa.Engine, table: sa.Table, dataset: Dataset) -> None:
    """Empty the table, bulk-insert the dataset and refresh the planner's statistics."""
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgres:  # a new relation: no dead tuples or bloated indexes from the last variant
            conn.execute(sa.text("TRUNCATE invoice"))
        else:
            conn.execute(sa.delete(table))
        conn.execute(sa.insert(table), list(dataset.rows))
        conn.execute(sa.text("ANALYZE invoice"))
    if not postgres:
        with engine.connect() as conn:  # give the freed pages back: every variant starts alike
            conn.execute(sa.text("VACUUM"))


def verify(engine: sa.Engine, table: sa.Table, dataset: Dataset, gone: frozenset[int]) -> None:
    """Raise unless exactly the rows with ids `gone` are missing and every other row remains."""
    with engine.connect() as conn:
        remaining = set(conn.scalars(sa.select(table.c.id)))
    expected = dataset.all_ids - gone
    if remaining != expected:
        stayed = len(remaining - expected)
        lost = len(expected - remaining)
        raise WrongResult(
            f"{stayed} rows that should be gone remain and {lost} rows that should remain are gone"
        )
