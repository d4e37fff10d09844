"""A configuration of the tests' own, written into a temporary folder (never the shipped one).

One product, `kids`, whose mapping and customers each test writes as YAML text; the catalogue
lists what the mappings of these tests touch. Also: running `validate` in-process, and
reading a table's rows by key, to compare before and after a run.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner

from worker.cli import main
from worker.configload import Config, load_config

CATALOGUE = """\
kinds:
  child: {label: Kind}
categories:
  name: {label: Naam}
  birth_date: {label: Geboortedatum}
  photo: {label: Foto/video}
products:
  kids:
    label: Kids
    annex: A.9
    processes:
      child: [name, birth_date, photo]
"""


def write_config(
    root: Path, product: str, customers: Mapping[str, str], catalogue: str = CATALOGUE
) -> Config:
    """Write catalogue, `products/kids.yaml` and `customers/<name>.yaml`; load and return it.

    `product` and each customer's text are dedented; a customer's text is the part after
    `customer: <name>`; `catalogue` replaces the default one (a product `kids`).
    Raises ConfigError when the files have problems (a test's typo).
    """
    (root / "products").mkdir(parents=True, exist_ok=True)
    (root / "customers").mkdir(exist_ok=True)
    (root / "catalogue.yaml").write_text(catalogue, encoding="utf-8")
    (root / "products" / "kids.yaml").write_text(textwrap.dedent(product), encoding="utf-8")
    for name, text in customers.items():
        body = f"customer: {name}\n{textwrap.dedent(text)}"
        (root / "customers" / f"{name}.yaml").write_text(body, encoding="utf-8")
    config = load_config(root)
    config.raise_for_problems()
    return config


def validate(root: Path, env: Mapping[str, str]) -> tuple[int, str]:
    """`retention-worker validate --config ROOT` in-process: exit code and all output."""
    result = CliRunner().invoke(
        main, ["validate", "--config", str(root)], env=dict(env), catch_exceptions=False
    )
    return result.exit_code, result.output


def rows(url: str, table: str, key: tuple[str, ...]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every row of `table` by its `key` columns, as a dict of all columns."""
    engine = sa.create_engine(url)
    try:
        spec = sa.Table(table, sa.MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            found = conn.execute(sa.select(spec)).mappings().all()
        return {tuple(r[k] for k in key): dict(r) for r in found}
    finally:
        engine.dispose()


def execute(url: str, *statements: str, params: list[dict[str, Any]] | None = None) -> None:
    """Run SQL statements in one transaction (each with `params` when given)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                if params:
                    conn.execute(sa.text(statement), params)
                else:
                    conn.execute(sa.text(statement))
    finally:
        engine.dispose()
