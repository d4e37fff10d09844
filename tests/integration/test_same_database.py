"""Two customers whose URL variables name one database, however the URLs spell it.

With one database per customer a run has no tenant filter, so customers a and b pointing at
the same database (127.0.0.1 and localhost, the default port given or not, other options,
another user or password) would each delete the other's rows. Both are set aside when the
files are read with the environment (no connection), `validate` exits 2 at both `url_env`s,
and customer c, with a database of its own, runs as usual. Where only the server can tell
(two host names of one server), live `validate` asks it. SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.integration.own_config import rows, validate, write_config
from tests.support import run_once
from worker.checks import check_live
from worker.config.samedb import url_identity
from worker.configload import load_config
from worker.events import Outcome
from worker.state import StateStore

PRODUCT = """\
product: kids
tenancy: {per_customer: true}
subjects:
  child:
    kind: child
    table: child
    key: [id]
    columns: {name: name}
    dates: {left: left_on}
rules:
  - id: kids.child.left
    subject: child
    after: {date: left, period: 12m}
    action: delete
"""


def customer(variable: str) -> str:
    return (
        f"timezone: Europe/Amsterdam\nproducts:\n  kids:\n    database: {{url_env: {variable}}}\n"
    )


CUSTOMERS = {"a": customer("A_URL"), "b": customer("B_URL"), "c": customer("C_URL")}


def create(url: str) -> None:
    """child(id, name, left_on): child 1 left in 2020 (expired), child 2 has not left."""
    md = sa.MetaData()
    child = sa.Table(
        "child",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(20)),
        sa.Column("left_on", sa.Date, index=True),
    )
    engine = sa.create_engine(url)
    try:
        md.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(child),
                [
                    {"id": 1, "name": "Kind 1", "left_on": dt.date(2020, 1, 1)},
                    {"id": 2, "name": "Kind 2", "left_on": None},
                ],
            )
    finally:
        engine.dispose()


def respelled(url: str, tmp_path: Path) -> str:
    """The same database as `url`, spelled otherwise: host, port, user/password, options."""
    parsed = sa.make_url(url)
    kind = parsed.get_backend_name()
    if kind == "sqlite":
        path = Path(str(parsed.database))
        return f"sqlite:///{path.parent / 'sub' / '..' / path.name}"
    if kind == "postgresql":  # trust authentication: any password is accepted
        return (
            f"postgresql+psycopg://{parsed.username}:other-secret@localhost/{parsed.database}"
            "?connect_timeout=5&application_name=b"
        )
    return f"mysql+pymysql://{parsed.username}@localhost:3306/{parsed.database}?charset=utf8mb4"


def children(url: str) -> dict[tuple[object, ...], dict[str, object]]:
    return rows(url, "child", ("id",))


def test_one_database_spelled_two_ways_sets_both_customers_aside(
    db_pair: tuple[str, str], tmp_path: Path, state: StateStore
) -> None:
    shared, own = db_pair
    if shared.startswith("sqlite"):
        (tmp_path / "sub").mkdir()
    for url in db_pair:
        create(url)
    write_config(tmp_path, PRODUCT, CUSTOMERS)
    env = {"A_URL": shared, "B_URL": respelled(shared, tmp_path), "C_URL": own}
    assert env["A_URL"] != env["B_URL"]
    assert url_identity(env["A_URL"]) == url_identity(env["B_URL"])

    code, out = validate(tmp_path, env)

    assert code == 2, out
    for name, other in (("a", "b (B_URL)"), ("b", "a (A_URL)")):
        assert f"customers/{name}.yaml: products.kids.database.url_env" in out, out
        assert f"the same database as {other}" in out, out
    assert "customers/c.yaml" not in out
    assert "other-secret" not in out

    config = load_config(tmp_path, env)
    assert sorted(config.customers) == ["c"]
    before_shared, before_own = children(shared), children(own)
    reports = run_once(config, env, state)
    assert [(r.customer, r.outcome) for r in reports] == [("c", Outcome.SUCCEEDED)]
    assert children(shared) == before_shared
    assert children(own) == {k: v for k, v in before_own.items() if k != (1,)}


def test_live_validate_asks_the_server(db_pair: tuple[str, str], tmp_path: Path) -> None:
    """Read without the environment, nothing is compared offline; live, each database says
    which it is, and the two customers of one database are refused at their url_env."""
    shared, own = db_pair
    if shared.startswith("sqlite"):
        (tmp_path / "sub").mkdir()
    create(shared)
    create(own)
    write_config(tmp_path, PRODUCT, CUSTOMERS)
    env = {"A_URL": shared, "B_URL": respelled(shared, tmp_path), "C_URL": own}

    live = check_live(load_config(tmp_path), env)

    found = [str(p) for p in live.problems]
    assert len(found) == 2, found
    assert all("as the server itself says" in p for p in found), found
    assert any("customers/a.yaml" in p and "same database as b (B_URL)" in p for p in found)
    assert any("customers/b.yaml" in p and "same database as a (A_URL)" in p for p in found)


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("postgresql+psycopg://u@127.0.0.1:5432/db", "postgresql://v:pw@localhost/db", True),
        ("postgresql://u@[::1]/db", "postgresql://u@0.0.0.0:5432/db?sslmode=disable", True),
        ("postgresql://u@/db?host=/var/run/postgresql", "postgresql://u@localhost/db", True),
        ("postgresql://u@localhost/db", "postgresql://u@localhost/DB", False),
        ("postgresql://u@localhost/db", "postgresql://u@localhost:5433/db", False),
        ("postgresql://u@db.internal/db", "postgresql://u@DB.internal./db", True),
        ("mysql+pymysql://r@127.0.0.1/db", "mariadb+pymysql://s@localhost:3306/DB", True),
        ("mysql+pymysql://r@127.0.0.1/db", "mysql+pymysql://r@127.0.0.1/db2", False),
        ("sqlite:////tmp/x/../a.db", "sqlite:////tmp/a.db", True),
        ("sqlite://", "sqlite://", False),
    ],
)
def test_urls_are_compared_as_the_database_they_name(first: str, second: str, same: bool) -> None:
    one, other = url_identity(first), url_identity(second)
    assert (one is not None and one == other) is same
