"""The correctness check run after every variant: exactly the expired rows changed.

The live table is compared with its seed (`<table>_seed`, the rows every variant starts
from) by key, in the database: a row is *gone* (in the seed, not live), *new* (live, not
in the seed) or *changed* (some column differs, NULL-safe). The ids must be exactly the
expected ones (the generator's answer, not an SQL predicate): for a delete, the expected
ids gone and nothing else gone, new or changed; for an anonymise, the expected ids changed
(each to exactly the masked values the rule prescribes) and nothing else. Every other
row — the same tenant's rows that are not yet due, every other tenant's, the outsider
tenant's — must be identical. A failure names the tenants affected and how many rows,
never a row's values.

Portable SQLAlchemy Core: PostgreSQL for the benchmark, SQLite for the smoke test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bench.database import BenchError
from connectors.anonymise import mask_value
from connectors.base import ColumnMask


class WrongResult(BenchError):
    """A variant did not change exactly the rows it should have."""


@dataclass(frozen=True)
class Diff:
    """Ids → tenant of the rows gone, new and changed (live table against its seed)."""

    gone: Mapping[int, int]
    new: Mapping[int, int]
    changed: Mapping[int, int]


def _tables(conn: sa.Connection, table: str) -> tuple[sa.Table, sa.Table]:
    md = sa.MetaData()
    live = sa.Table(table, md, autoload_with=conn)
    seed = sa.Table(f"{table}_seed", md, autoload_with=conn)
    return live, seed


def diff(engine: sa.Engine, table: str) -> Diff:
    """Compare `table` with `<table>_seed` by id, every column, NULL-safe: one pass (a full
    outer join) that returns only the rows that differ."""
    with engine.connect() as conn:
        live, seed = _tables(conn, table)
        columns = [c.name for c in live.columns if c.name != "id"]
        joined = seed.join(live, seed.c.id == live.c.id, full=True)
        kind = sa.case((live.c.id.is_(None), "gone"), (seed.c.id.is_(None), "new"), else_="changed")
        rows = conn.execute(
            sa.select(
                sa.func.coalesce(seed.c.id, live.c.id),
                sa.func.coalesce(seed.c.organisation_id, live.c.organisation_id),
                kind,
            )
            .select_from(joined)
            .where(
                sa.or_(
                    live.c.id.is_(None),
                    seed.c.id.is_(None),
                    *(seed.c[c].is_distinct_from(live.c[c]) for c in columns),
                )
            )
        ).all()
    found: dict[str, dict[int, int]] = {"gone": {}, "new": {}, "changed": {}}
    for key, tenant, what in rows:
        found[what][key] = tenant
    return Diff(found["gone"], found["new"], found["changed"])


def _by_tenant(ids: Iterable[int], tenant_of: Mapping[int, int]) -> str:
    counts = Counter(tenant_of[i] for i in ids)
    shown = ", ".join(f"tenant {t}: {n}" for t, n in sorted(counts.items())[:5])
    more = f" and {len(counts) - 5} more tenants" if len(counts) > 5 else ""
    return f"{shown}{more}"


def _tenants_of(engine: sa.Engine, table: str, ids: Set[int]) -> dict[int, int]:
    if not ids:
        return {}
    chosen = sorted(ids)[:1000]
    with engine.connect() as conn:
        _, seed = _tables(conn, table)
        return dict(
            conn.execute(  # type: ignore[arg-type]
                sa.select(seed.c.id, seed.c.organisation_id).where(seed.c.id.in_(chosen))
            ).all()
        )


def check_delete(engine: sa.Engine, table: str, expected: Set[int], what: str) -> str:
    """Raise WrongResult unless exactly the ids `expected` are gone from `table` and every
    other row is unchanged; returns a one-line summary."""
    found = diff(engine, table)
    problems: list[str] = []
    missed = expected - found.gone.keys()
    extra = found.gone.keys() - expected
    if missed:
        tenants = _tenants_of(engine, table, missed)
        problems.append(f"{len(missed)} expired rows remain ({_by_tenant(tenants, tenants)})")
    if extra:
        problems.append(
            f"{len(extra)} rows gone that were not due ({_by_tenant(extra, found.gone)})"
        )
    if found.changed:
        problems.append(
            f"{len(found.changed)} rows changed ({_by_tenant(found.changed, found.changed)})"
        )
    if found.new:
        problems.append(f"{len(found.new)} rows appeared ({_by_tenant(found.new, found.new)})")
    if problems:
        raise WrongResult(f"{what}: {table}: " + "; ".join(problems))
    return f"{len(found.gone)} rows gone, exactly the expired ones; every other row unchanged"


def check_anonymise(
    engine: sa.Engine,
    table: str,
    expected: Set[int],
    masks: Sequence[ColumnMask],
    pepper: bytes,
    what: str,
) -> str:
    """Raise WrongResult unless exactly the ids `expected` changed in `table`, each to the
    values `masks` prescribe for its seed values (keyed hashes under `pepper`), and every
    other row is unchanged; returns a one-line summary."""
    found = diff(engine, table)
    problems: list[str] = []
    changed = found.changed.keys()
    missed = expected - changed
    extra = changed - expected
    if missed:
        tenants = _tenants_of(engine, table, missed)
        problems.append(
            f"{len(missed)} expired rows not anonymised ({_by_tenant(tenants, tenants)})"
        )
    if extra:
        problems.append(
            f"{len(extra)} rows changed that were not due ({_by_tenant(extra, found.changed)})"
        )
    if found.gone:
        problems.append(f"{len(found.gone)} rows gone ({_by_tenant(found.gone, found.gone)})")
    if found.new:
        problems.append(f"{len(found.new)} rows appeared ({_by_tenant(found.new, found.new)})")
    wrong = _wrong_masks(engine, table, expected & changed, masks, pepper)
    if wrong:
        problems.append(
            f"{sum(wrong.values())} values not masked as the rule says (columns: "
            f"{', '.join(f'{c}: {n}' for c, n in sorted(wrong.items()))})"
        )
    if problems:
        raise WrongResult(f"{what}: {table}: " + "; ".join(problems))
    return (
        f"{len(changed)} rows anonymised, exactly the expired ones, every masked column as "
        "the rule says; every other row unchanged"
    )


def _wrong_masks(
    engine: sa.Engine, table: str, ids: Set[int], masks: Sequence[ColumnMask], pepper: bytes
) -> dict[str, int]:
    """Column → how many of the rows `ids` do not hold mask_value(seed value)."""
    wrong: Counter[str] = Counter()
    ordered = sorted(ids)
    with engine.connect() as conn:
        live, seed = _tables(conn, table)
        for start in range(0, len(ordered), 5000):
            chunk = ordered[start : start + 5000]
            query = (
                sa.select(
                    *(seed.c[m.column].label(f"b_{m.column}") for m in masks),
                    *(live.c[m.column].label(f"a_{m.column}") for m in masks),
                )
                .select_from(seed.join(live, seed.c.id == live.c.id))
                .where(seed.c.id.in_(chunk))
            )
            for row in conn.execute(query).mappings():
                for m in masks:
                    if _value(row[f"a_{m.column}"]) != _value(
                        mask_value(m, row[f"b_{m.column}"], pepper)
                    ):
                        wrong[m.column] += 1
    return dict(wrong)


def _value(value: Any) -> Any:
    """Dates from an untyped SQLite seed table come back as text: compare as text."""
    return None if value is None else str(value)
