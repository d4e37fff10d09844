"""The benchmark's data: one shared FlexKids product database, many tenants, 10 % expired.

Two tables are measured, each seeded with `rows` rows of synthetic (never real) people:

- `invoice` (rule `flexkids.invoice.fiscal`: delete after 7 years),
- `parent` (rule `flexkids.parent.relation-ended`: anonymise after 24 months, with a
  fixed text, NULLs, postcode digits, the birth year and a keyed hash of the e-mail).

Every row belongs to one of `tenants` configured tenants (FIRST_TENANT …, drawn at random)
or, for 1 % of the rows, to OUTSIDER: a tenant of the same database that no configured
customer owns, whose rows are all old enough to be expired and must never be touched.
Of the configured tenants' rows, `expired_share` (10 %) have a time basis before the
rule's cutoff; the rest are on or after it (the first kept row exactly on it: rows expire
strictly before the cutoff). Ids are 1 … rows; expired and kept rows are interleaved.

The rows are written once into `<table>_seed` (PostgreSQL: COPY) and copied into the live
table before every variant (`reseed`), server-side, so every variant starts from the
same rows. The generator, not SQL, says which ids are expired: the checker compares the
database against that independent answer.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bench.configgen import OUTSIDER, tenant_ids

SEED = 20261128
CREATED = dt.datetime(2015, 1, 1, 9, 0)
OUTSIDER_SHARE = 0.01
EXPIRED_SHARE = 0.10
CHUNK = 10_000

COLUMNS: dict[str, tuple[str, ...]] = {
    "invoice": (
        "id",
        "organisation_id",
        "parent_id",
        "number",
        "iban",
        "amount_cents",
        "invoice_date",
        "paid_on",
        "created_at",
    ),
    "parent": (
        "id",
        "organisation_id",
        "first_name",
        "last_name",
        "street",
        "postcode",
        "city",
        "phone",
        "email",
        "birth_date",
        "bsn",
        "relation_started_on",
        "relation_ended_on",
        "created_at",
    ),
}
BASIS = {"invoice": "invoice_date", "parent": "relation_ended_on"}
# The rule's row condition (`where:` in config/products/flexkids.yaml), in the baselines too.
CONDITION = {"invoice": "paid_on IS NOT NULL", "parent": "TRUE"}


@dataclass(frozen=True)
class Seeded:
    """One seeded table: its cutoff and which ids a correct run changes.

    `expired`: ids of configured tenants with a basis before `cutoff`; `tenant_of` maps
    every id to its tenant (for the per-tenant report of the checker)."""

    table: str
    basis: str
    cutoff: dt.date
    rows: int
    tenants: range
    expired: frozenset[int]
    outsider_rows: int

    @property
    def seed_table(self) -> str:
        return f"{self.table}_seed"


def _row(table: str, i: int, org: int, day: dt.date) -> tuple[Any, ...]:
    if table == "invoice":
        # Every invoice is paid (a month after it is issued): the rule keeps unpaid ones.
        paid = day + dt.timedelta(days=30)
        return (i, org, None, f"F{i}", f"NL00BENCH{i:010d}", 1000 + i % 9000, day, paid, CREATED)
    return (
        i,
        org,
        f"Voornaam{i}",
        f"Achternaam{i}",
        f"Dorpsstraat {i}",
        f"{1000 + i % 9000} AB",
        "Utrecht",
        f"06-{i % 10**8:08d}",
        f"persoon{i}@example.nl",
        dt.date(1960, 1, 1) + dt.timedelta(days=i % 15000),
        f"{i % 10**9:09d}",
        dt.date(2010, 1, 1),
        day,
        CREATED,
    )


def generate(
    table: str, rows: int, tenants: int, cutoff: dt.date, expired: set[int]
) -> Iterator[tuple[Any, ...]]:
    """Yield the rows of `table` in COLUMNS order; adds the expired ids to `expired`."""
    rng = random.Random(f"{SEED}-{table}")
    first, count = tenant_ids(tenants)[0], tenants
    on_cutoff = True
    for i in range(1, rows + 1):
        draw = rng.random()
        old = cutoff - dt.timedelta(days=1 + rng.randrange(3650))
        if draw < OUTSIDER_SHARE:
            yield _row(table, i, OUTSIDER, old)
            continue
        org = first + rng.randrange(count)
        if draw < OUTSIDER_SHARE + EXPIRED_SHARE:
            expired.add(i)
            yield _row(table, i, org, old)
        else:
            day = cutoff if on_cutoff else cutoff + dt.timedelta(days=rng.randrange(1500))
            on_cutoff = False
            yield _row(table, i, org, day)


def _chunks(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def seed(engine: sa.Engine, table: str, rows: int, tenants: int, cutoff: dt.date) -> Seeded:
    """Generate `table`'s rows into `<table>_seed` (created here, without indexes)."""
    expired: set[int] = set()
    columns = COLUMNS[table]
    source = generate(table, rows, tenants, cutoff, expired)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}_seed"))
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(f"CREATE TABLE {table}_seed (LIKE {table} INCLUDING DEFAULTS)"))
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(f"COPY {table}_seed ({', '.join(columns)}) FROM STDIN") as copy:
                for row in source:
                    copy.write_row(row)
        else:
            live = sa.Table(table, sa.MetaData(), autoload_with=conn)
            copy_of = [sa.Column(c.name, c.type) for c in live.columns]  # no keys, no indexes
            sa.Table(f"{table}_seed", sa.MetaData(), *copy_of).create(conn)
            insert = sa.text(
                f"INSERT INTO {table}_seed ({', '.join(columns)}) "
                f"VALUES ({', '.join(':' + c for c in columns)})"
            )
            for chunk in _chunks(source, CHUNK):
                conn.execute(insert, [dict(zip(columns, r, strict=True)) for r in chunk])
    outsider = _count(engine, f"{table}_seed", f"organisation_id = {OUTSIDER}")
    return Seeded(
        table=table,
        basis=BASIS[table],
        cutoff=cutoff,
        rows=rows,
        tenants=tenant_ids(tenants),
        expired=frozenset(expired),
        outsider_rows=outsider,
    )


def _count(engine: sa.Engine, table: str, where: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one()
        )


def reseed(engine: sa.Engine, tables: Sequence[Seeded], *, expired: bool = True) -> None:
    """Empty the live tables and copy their seed back (server-side), then ANALYZE.

    On PostgreSQL, TRUNCATE … CASCADE also empties tables that reference these (invoice
    and child reference parent): reseed the referencing table after its parent. Without
    `expired`, the expired rows are left out (a database with nothing left to do).
    """
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        names = ", ".join(t.table for t in tables)
        if postgres:
            conn.execute(sa.text(f"TRUNCATE {names} CASCADE"))
        else:
            for t in tables:
                conn.execute(sa.text(f"DELETE FROM {t.table}"))
        for t in tables:
            where = ""
            if not expired:
                where = (
                    f" WHERE NOT ({t.basis} < :cutoff AND organisation_id BETWEEN "
                    f"{t.tenants[0]} AND {t.tenants[-1]})"
                )
            conn.execute(
                sa.text(f"INSERT INTO {t.table} SELECT * FROM {t.seed_table}{where}"),
                {"cutoff": t.cutoff} if where else {},
            )
        for t in tables:
            conn.execute(sa.text(f"ANALYZE {t.table}"))
