"""Smoke test of the benchmark's correctness checker (bench/check.py) on a tiny SQLite
database: it passes exactly-right results and names the tenant of a wrong one.

The bench itself is not part of the test suite (`make bench`); this keeps its checker —
the part that makes a fast wrong result fail — from rotting.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from bench import baselines, check, data
from bench.configgen import FIRST_TENANT, OUTSIDER
from connectors.base import ColumnMask, Mask
from demo.schemas import create_schema

PEPPER = b"smoke-pepper-0123456789abcdef"
CUTOFF = dt.date(2019, 11, 28)
MASKS = (
    ColumnMask("first_name", Mask.FIXED, text="anonymised"),
    ColumnMask("last_name", Mask.NULL),
    ColumnMask("postcode", Mask.POSTCODE_DIGITS),
    ColumnMask("email", Mask.KEYED_HASH),
    ColumnMask("birth_date", Mask.YEAR),
)


@pytest.fixture
def engine(sqlite_url: str) -> sa.Engine:
    create_schema(sqlite_url, "flexkids")
    return sa.create_engine(sqlite_url)


def _update(engine: sa.Engine, sql: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def test_generated_rows_have_the_promised_shape() -> None:
    expired: set[int] = set()
    rows = list(data.generate("invoice", 2000, 5, CUTOFF, expired))
    tenants = {r[1] for r in rows}
    assert tenants == {OUTSIDER, *range(FIRST_TENANT, FIRST_TENANT + 5)}
    due = {r[0] for r in rows if r[1] != OUTSIDER and r[6] < CUTOFF}
    assert due == expired and 100 < len(expired) < 300  # about 10 %
    assert min(r[6] for r in rows if r[1] != OUTSIDER and r[0] not in expired) == CUTOFF


def test_delete_check_passes_exactly_the_expired_rows_and_names_a_touched_tenant(
    engine: sa.Engine,
) -> None:
    seeded = data.seed(engine, "invoice", 300, 3, CUTOFF)
    data.reseed(engine, [seeded])
    _, ids = baselines.per_row(engine, seeded, "delete", (), PEPPER, len(seeded.expired))
    assert ids == seeded.expired
    summary = check.check_delete(engine, "invoice", seeded.expired, "loop")
    assert summary.startswith(f"{len(seeded.expired)} rows gone")

    kept = min(set(range(1, 301)) - seeded.expired)  # a row that is not due
    with engine.connect() as conn:
        tenant = conn.execute(
            sa.text("SELECT organisation_id FROM invoice WHERE id = :id"), {"id": kept}
        ).scalar_one()
    _update(engine, "UPDATE invoice SET amount_cents = amount_cents + 1 WHERE id = :id", id=kept)
    with pytest.raises(check.WrongResult, match=rf"1 rows changed \(tenant {tenant}: 1\)"):
        check.check_delete(engine, "invoice", seeded.expired, "loop")

    data.reseed(engine, [seeded])  # nothing done: every expired row remains
    with pytest.raises(check.WrongResult, match=f"{len(seeded.expired)} expired rows remain"):
        check.check_delete(engine, "invoice", seeded.expired, "nothing")


def test_anonymise_check_wants_every_mask_as_the_rule_says(engine: sa.Engine) -> None:
    seeded = data.seed(engine, "parent", 300, 3, CUTOFF)
    data.reseed(engine, [seeded])
    _, ids = baselines.per_row(engine, seeded, "anonymise", MASKS, PEPPER, len(seeded.expired))
    assert ids == seeded.expired
    check.check_anonymise(engine, "parent", seeded.expired, MASKS, PEPPER, "loop")

    victim = min(seeded.expired)
    _update(engine, "UPDATE parent SET email = 'anon-0000000000' WHERE id = :id", id=victim)
    with pytest.raises(check.WrongResult, match="1 values not masked as the rule says"):
        check.check_anonymise(engine, "parent", seeded.expired, MASKS, PEPPER, "loop")
    with pytest.raises(check.WrongResult, match="rows changed that were not due"):
        check.check_anonymise(engine, "parent", seeded.expired - {victim}, MASKS, PEPPER, "x")
