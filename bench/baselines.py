"""The baselines the worker is compared with, on the same data in the same run.

- `raw_all`: one statement over every configured tenant (`organisation_id BETWEEN first
  AND last`, which leaves the outsider tenant out), in one transaction: about the best the
  database can do, with no audit trail at all.
- `raw_per_tenant`: the same statement once per tenant, each in its own transaction.
- `per_row`: what a hand-written script does: select the expired ids (and values), then
  one statement per row in its own transaction; on a sample of `sample` rows, so its
  rows/second is extrapolated.

For anonymise the masks are computed in SQL (PostgreSQL: pgcrypto's `hmac` for the keyed
hash, so the raw statement writes exactly the worker's values); the per-row loop computes
them in Python with the worker's own `mask_value`. Each function returns a Timing and,
for `per_row`, the ids it changed.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bench.data import CONDITION, Seeded
from connectors.anonymise import KEYED_HASH_LENGTH, PSEUDONYM_PREFIX, mask_value
from connectors.base import ColumnMask, Mask


@dataclass(frozen=True)
class Timing:
    """`rows` changed in `seconds` (wall clock)."""

    seconds: float
    rows: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def _sql_mask(m: ColumnMask) -> str:
    """A PostgreSQL expression giving what `mask_value` gives for a non-NULL value."""
    c = m.column
    if m.mask is Mask.NULL:
        return "NULL"
    if m.mask is Mask.FIXED:
        return "CAST(:fixed_" + c + " AS text)"
    if m.mask is Mask.YEAR:
        return f"CAST(date_trunc('year', {c}) AS date)"
    if m.mask is Mask.POSTCODE_DIGITS:
        return f"NULLIF(left(regexp_replace({c}, '[^0-9]', '', 'g'), 4), '')"
    if m.mask is Mask.KEYED_HASH:
        digits = KEYED_HASH_LENGTH - len(PSEUDONYM_PREFIX)
        return (
            f"'{PSEUDONYM_PREFIX}' || left(encode(hmac(convert_to({c}, 'UTF8'), "
            f"CAST(:pepper AS bytea), 'sha256'), 'hex'), {digits})"
        )
    raise ValueError(f"no SQL for mask {m.mask}")


def _statement(seeded: Seeded, action: str, masks: Sequence[ColumnMask], where: str) -> str:
    where = f"{CONDITION[seeded.table]} AND {where}"
    if action == "delete":
        return f"DELETE FROM {seeded.table} WHERE {seeded.basis} < :cutoff AND {where}"
    sets = ", ".join(f"{m.column} = {_sql_mask(m)}" for m in masks)
    return f"UPDATE {seeded.table} SET {sets} WHERE {seeded.basis} < :cutoff AND {where}"


def _params(seeded: Seeded, masks: Sequence[ColumnMask], pepper: bytes) -> dict[str, Any]:
    params: dict[str, Any] = {"cutoff": seeded.cutoff, "pepper": pepper}
    params.update({f"fixed_{m.column}": m.text for m in masks if m.mask is Mask.FIXED})
    return params


def prepare(engine: sa.Engine) -> None:
    """pgcrypto for the raw anonymise statement's keyed hash (PostgreSQL)."""
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pgcrypto"))


def raw_all(
    engine: sa.Engine, seeded: Seeded, action: str, masks: Sequence[ColumnMask], pepper: bytes
) -> Timing:
    """One statement over all configured tenants, one transaction."""
    sql = sa.text(_statement(seeded, action, masks, "organisation_id BETWEEN :first AND :last"))
    params = _params(seeded, masks, pepper) | {
        "first": seeded.tenants[0],
        "last": seeded.tenants[-1],
    }
    gc.collect()
    started = time.perf_counter()
    with engine.begin() as conn:
        rows = conn.execute(sql, params).rowcount
    return Timing(time.perf_counter() - started, rows)


def raw_per_tenant(
    engine: sa.Engine, seeded: Seeded, action: str, masks: Sequence[ColumnMask], pepper: bytes
) -> Timing:
    """The same statement once per tenant, each in its own transaction."""
    sql = sa.text(_statement(seeded, action, masks, "organisation_id = :tenant"))
    params = _params(seeded, masks, pepper)
    gc.collect()
    rows = 0
    started = time.perf_counter()
    with engine.connect() as conn:
        for tenant in seeded.tenants:
            with conn.begin():
                rows += conn.execute(sql, params | {"tenant": tenant}).rowcount
    return Timing(time.perf_counter() - started, rows)


def per_row(
    engine: sa.Engine,
    seeded: Seeded,
    action: str,
    masks: Sequence[ColumnMask],
    pepper: bytes,
    sample: int,
) -> tuple[Timing, frozenset[int]]:
    """Select up to `sample` expired rows (lowest ids, all tenants), then change each in
    its own transaction; masks computed in Python."""
    table = sa.Table(seeded.table, sa.MetaData(), autoload_with=engine)
    due = sa.and_(
        table.c[seeded.basis] < seeded.cutoff,
        sa.text(CONDITION[seeded.table]),
        table.c.organisation_id.between(seeded.tenants[0], seeded.tenants[-1]),
    )
    columns = [table.c[m.column] for m in masks]
    select = sa.select(table.c.id, *columns).where(due).order_by(table.c.id).limit(sample)
    gc.collect()
    started = time.perf_counter()
    with engine.connect() as conn:
        rows = conn.execute(select).all()
        conn.commit()
        for row in rows:
            with conn.begin():
                if action == "delete":
                    conn.execute(sa.delete(table).where(table.c.id == row[0]))
                else:
                    values = {
                        m.column: mask_value(m, row[1 + n], pepper) for n, m in enumerate(masks)
                    }
                    conn.execute(sa.update(table).where(table.c.id == row[0]).values(values))
    seconds = time.perf_counter() - started
    return Timing(seconds, len(rows)), frozenset(r[0] for r in rows)
