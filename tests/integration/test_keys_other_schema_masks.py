"""An anonymise mask on a column that a foreign key from outside the product's schema
references (another PostgreSQL schema, another MariaDB database) is checked by `validate`
like one from inside it (connectors/maskfit.py, worker/constraints.py `_masks`): ON UPDATE
CASCADE a warning naming the key and what a run does (it leaves the rows such a row
references: tests/integration/test_update_reach.py), ON UPDATE RESTRICT / NO ACTION a
problem (the update fails while such a row exists, so every run's batch with such a row
would fail).

Before, `_masks` passed `Connector.foreign_keys_to` alone, which leaves those keys out:
validate said nothing, though a run's keyed_hash of tenant 1's `child.name` rewrote tenant
2's `other.memo.child_name` (PostgreSQL and MariaDB alike).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import dbs, kidsapp
from tests.gate_support import config
from tests.integration.own_config import validate
from tests.integration.test_cached_keys import create
from tests.rawsql import execute


@pytest.fixture(params=["postgresql", "mariadb"])
def outside(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(product URL, the other schema or database its memo table lives in)."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        execute(url, "CREATE SCHEMA other")
        yield url, "other"
        return
    url = request.getfixturevalue("mariadb_url")
    with dbs.mariadb_database(request.getfixturevalue("mariadb_server_url")) as other:
        yield url, str(sa.make_url(other).database)


def memo(url: str, other: str, on_update: str) -> None:
    """Child names made unique, and `<other>.memo(child_name) → child(name) ON UPDATE …`,
    one row of tenant 2 referencing child 1's name."""
    create(url, None)
    q = '"' if url.startswith("postgresql") else "`"
    product = "public" if q == '"' else str(sa.make_url(url).database)
    execute(
        url,
        "UPDATE child SET name = CONCAT('Kind', id)",
        "ALTER TABLE child ADD CONSTRAINT child_name UNIQUE (name)",
        f"CREATE TABLE {q}{other}{q}.memo (id INTEGER PRIMARY KEY, tenant_id INTEGER, "
        f"child_name VARCHAR(40), CONSTRAINT memo_name FOREIGN KEY (child_name) "
        f"REFERENCES {q}{product}{q}.child (name) ON UPDATE {on_update})",
        f"INSERT INTO {q}{other}{q}.memo VALUES (1, 2, 'Kind1')",
    )


def check(tmp_path: Path, url: str) -> tuple[int, str]:
    rule = kidsapp.rule(action="anonymise", **{"with": {"name": "keyed_hash"}})
    config(tmp_path, product=kidsapp.mapping(rules=[rule]))
    return validate(tmp_path / "config", {kidsapp.URL_ENV: url})


def test_validate_warns_of_a_mask_a_cascading_key_from_outside_follows(
    tmp_path: Path, outside: tuple[str, str]
) -> None:
    url, other = outside
    memo(url, other, "CASCADE")
    code, out = check(tmp_path, url)
    assert code == 0, out
    assert (
        f"child.name: keyed_hash changes a value that memo_name, {other}.memo(child_name) → "
        "child(name) references with ON UPDATE CASCADE: the change reaches those "
        f"{other}.memo rows too; {other}.memo is outside the product's schema, which the run "
        "neither counts nor checks: a row such a row references is left (blocked, as under "
        "RESTRICT) until none does"
    ) in " ".join(out.split()), out


def test_validate_refuses_a_mask_a_restricting_key_from_outside_refuses(
    tmp_path: Path, outside: tuple[str, str]
) -> None:
    url, other = outside
    memo(url, other, "RESTRICT")
    code, out = check(tmp_path, url)
    assert code != 0, out
    assert (
        f"references with ON UPDATE RESTRICT: the update fails while such a {other}.memo row exists"
    ) in " ".join(out.split()), out


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_validate_refuses_a_mask_the_tables_own_restricting_key_refuses(
    tmp_path: Path, request: pytest.FixtureRequest, server: str
) -> None:
    """A key of the table to itself counts too: `child(twin_name) → child(name) ON UPDATE
    RESTRICT` refuses masking `name` while a twin refers to it (SQLite cannot add a key to
    an existing table)."""
    url = request.getfixturevalue("pg_url" if server == "postgresql" else "mariadb_url")
    create(url, None)
    execute(
        url,
        "UPDATE child SET name = CONCAT('Kind', id)",
        "ALTER TABLE child ADD CONSTRAINT child_name UNIQUE (name)",
        "ALTER TABLE child ADD COLUMN twin_name VARCHAR(40)",
        "ALTER TABLE child ADD CONSTRAINT child_twin FOREIGN KEY (twin_name) "
        "REFERENCES child (name) ON UPDATE RESTRICT",
    )
    code, out = check(tmp_path, url)
    assert code != 0, out
    assert (
        "references with ON UPDATE RESTRICT: the update fails while such a child row exists"
    ) in " ".join(out.split()), out
