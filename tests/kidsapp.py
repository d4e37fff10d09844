"""A small configuration and schema the tests own: one shared product, `kidsapp`.

One table `child(id, tenant_id, name, health, left_on)`; rule `kidsapp.child.left` deletes a
child `child_months` (default 24) after it left. Customers `kdv-a` (tenant 1) and `kdv-b`
(tenant 2). Tests change what they need through the keyword arguments, never the shipped
config/.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

PRODUCT = "kidsapp"
URL_ENV = "KIDSAPP_DATABASE_URL"
RULE = "kidsapp.child.left"
TENANTS = {"kdv-a": 1, "kdv-b": 2}

CATALOGUE = {
    "kinds": {"child": {"label": "Kind"}},
    "categories": {
        "name": {"label": "Naam"},
        "health": {"label": "Gezondheidsgegevens", "special": True},
    },
    "products": {
        PRODUCT: {"label": "KidsApp", "annex": "A.0", "processes": {"child": ["name", "health"]}}
    },
}


def mapping(**extra: Any) -> dict[str, Any]:
    """The product mapping; `extra` replaces top-level fields (`rules`, `breaker`, ...)."""
    base: dict[str, Any] = {
        "product": PRODUCT,
        "database": {"url_env": URL_ENV},
        "tenancy": {"column": "tenant_id"},
        "batch_size": 500,
        "subjects": {
            "child": {
                "kind": "child",
                "table": "child",
                "key": ["id"],
                "columns": {"name": "name", "health": "health"},
                "dates": {"left": "left_on"},
            }
        },
        "rules": [rule()],
    }
    return {**base, **extra}


def rule(**extra: Any) -> dict[str, Any]:
    """The delete rule; `extra` adds fields such as `approval` or `breaker`."""
    return {
        "id": RULE,
        "subject": "child",
        "after": {"date": "left", "period": {"setting": "child_months", "default": 24}},
        "action": "delete",
        **extra,
    }


def write_config(
    folder: Path,
    *,
    product: Mapping[str, Any] | None = None,
    customers: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write catalogue, mapping and customer files under `folder`; returns it.

    `customers` maps a name to the fields of its `products.kidsapp` entry; by default
    kdv-a and kdv-b with their tenants and no settings.
    """
    (folder / "products").mkdir(parents=True, exist_ok=True)
    (folder / "customers").mkdir(exist_ok=True)
    _dump(folder / "catalogue.yaml", CATALOGUE)
    _dump(folder / "products" / f"{PRODUCT}.yaml", product or mapping())
    chosen = customers or {name: {} for name in TENANTS}
    for name, fields in chosen.items():
        entry = {"tenant": TENANTS.get(name, 99), **fields}
        _dump(
            folder / "customers" / f"{name}.yaml",
            {"customer": name, "timezone": "Europe/Amsterdam", "products": {PRODUCT: entry}},
        )
    return folder


def _dump(path: Path, data: Any) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


METADATA = sa.MetaData()
CHILD = sa.Table(
    "child",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tenant_id", sa.Integer, nullable=False, index=True),
    sa.Column("name", sa.String(100)),
    sa.Column("health", sa.String(200)),
    sa.Column("left_on", sa.Date, index=True),
)


NOTE = sa.Table(
    "child_note",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("child_id", sa.Integer, nullable=False, index=True),
    sa.Column("tenant_id", sa.Integer, nullable=False),
    sa.Column("text", sa.String(200)),
)


def with_notes(**extra: Any) -> dict[str, Any]:
    """The mapping with `child_note` rows deleted with their child (a dependent)."""
    subjects = mapping()["subjects"]
    child = {
        **subjects["child"],
        "dependents": [{"table": "child_note", "references": {"child_id": "id"}}],
    }
    return mapping(subjects={"child": child}, **extra)


def create(url: str, rows: Iterable[tuple[int, int, dt.date | None]] = (), notes: int = 0) -> None:
    """Create the tables and insert (id, tenant, left_on) rows with synthetic values, and
    `notes` child_note rows per child."""
    engine = sa.create_engine(url)
    try:
        METADATA.create_all(engine)
        batch = [
            {"id": i, "tenant_id": t, "name": f"Kind {i}", "health": "pinda", "left_on": d}
            for i, t, d in rows
        ]
        if batch:
            with engine.begin() as conn:
                conn.execute(CHILD.insert(), batch)
                if notes:
                    conn.execute(
                        NOTE.insert(),
                        [
                            {
                                "id": r["id"] * 100 + n,
                                "child_id": r["id"],
                                "tenant_id": r["tenant_id"],
                                "text": "notitie",
                            }
                            for r in batch
                            for n in range(notes)
                        ],
                    )
    finally:
        engine.dispose()


def drop(url: str) -> None:
    """Drop the table if it exists (a property test reuses one database per backend)."""
    engine = sa.create_engine(url)
    try:
        METADATA.drop_all(engine)
    finally:
        engine.dispose()


def rows_by_id(url: str) -> dict[int, tuple[int, dt.date | None]]:
    """id → (tenant, left_on) of every row left."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(sa.select(CHILD.c.id, CHILD.c.tenant_id, CHILD.c.left_on))
            return {int(i): (int(t), d) for i, t, d in found}
    finally:
        engine.dispose()
