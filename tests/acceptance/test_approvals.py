"""A person decides the unusual, through the real CLI: the breaker on a mistyped month,
four-eyes approval, and legal holds placed, listed and released (real PostgreSQL)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests import kidsapp
from tests.acceptance.harness import cli, env_without

PEPPER = "acceptance-pepper-0123456789abcdef"


def setup(tmp_path: Path, product_url: str, **config: Any) -> dict[str, str]:
    kidsapp.write_config(tmp_path / "config", **config)
    env = {
        **env_without(os.environ, ("RETENTION_", kidsapp.URL_ENV)),
        kidsapp.URL_ENV: product_url,
        "RETENTION_CONFIG_DIR": str(tmp_path / "config"),
        "RETENTION_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "RETENTION_PEPPER": PEPPER,
        "RETENTION_LOG_LEVEL": "WARNING",
        "RETENTION_RETRY_BUDGET_SECONDS": "2",
    }
    done = cli(["migrate"], env)
    assert done.returncode == 0, done.stderr
    return env


def sql(url: str, statement: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def test_a_mistyped_month_waits_for_two_different_approvers(tmp_path: Path, pg_url: str) -> None:
    """`child_months: 1` on 100,000 rows of which most are older: run exits 3 and changes
    nothing for that rule; approvals list shows the figures; one approver is not enough,
    the same one twice is refused, a second one approves; the next run deletes exactly the
    counted rows and exits 0."""
    env = setup(
        tmp_path,
        pg_url,
        product=kidsapp.mapping(batch_size=10_000, approval={"four_eyes": True}),
        customers={"kdv-a": {"settings": {"child_months": 1}}, "kdv-b": {}},
    )
    kidsapp.create(pg_url)
    sql(
        pg_url,
        "INSERT INTO child (id, tenant_id, name, health, left_on) "
        "SELECT i, 1, 'Kind ' || i, 'pinda', CURRENT_DATE - (i % 1500) "
        "FROM generate_series(1, 100000) AS i",
    )
    sql(
        pg_url,
        "INSERT INTO child (id, tenant_id, name, left_on) "
        "SELECT 200000 + i, 2, 'Kind', CURRENT_DATE - 1000 FROM generate_series(1, 500) AS i",
    )

    first = cli(["run", "--once"], env, timeout=300)

    assert first.returncode == 3, first.stdout + first.stderr
    assert "1 rule(s) wait for a person's approval" in first.stdout
    assert "kidsapp.child.left: awaits approval" in first.stdout
    counts = dict(sql(pg_url, "SELECT tenant_id, count(*) FROM child GROUP BY tenant_id"))
    assert counts == {1: 100_000}  # kdv-a untouched; kdv-b's 500 expired rows deleted

    listed = cli(["approvals", "list", "--format", "json"], env)
    assert listed.returncode == 0, listed.stderr
    (request,) = json.loads(listed.stdout)
    cutoff = request["cutoff"]
    (expected,) = sql(
        pg_url,
        "SELECT count(*) FROM child WHERE tenant_id = 1 AND left_on < CAST(:c AS date)",
        c=cutoff,
    )
    assert (request["why"], request["status"], request["approvers_needed"]) == (
        "breaker",
        "waiting",
        2,
    )
    assert request["eligible"] == expected[0] > 90_000
    assert any("exceed max_rows 50000" in r for r in request["figures"]["reasons"])
    assert request["figures"]["table_rows"] == 100_000
    ident = request["approval_id"]
    table = cli(["approvals", "list"], env)
    assert request["approval_id"] in table.stdout and "breaker" in table.stdout
    assert f"{ident}: delete {request['eligible']} row(s) of child (health, name)" in (
        table.stdout.replace(request["approval_id"], ident)
    )

    one = cli(["approve", ident, "--by", "alice", "--reason", "leavers of 2025"], env)
    assert one.returncode == 0, one.stderr
    assert "1 of 2 approvals (alice)" in one.stdout
    again = cli(["approve", ident, "--by", "alice", "--reason", "really"], env)
    assert again.returncode == 2
    assert "second, different approver" in again.stderr
    two = cli(["approve", ident, "--by", "bob", "--reason", "checked the setting"], env)
    assert two.returncode == 0, two.stderr
    assert f"{ident} approved" in two.stdout

    second = cli(["run", "--once"], env, timeout=300)

    assert second.returncode == 0, second.stdout + second.stderr
    left = sql(
        pg_url,
        "SELECT count(*), count(*) FILTER (WHERE left_on < CAST(:c AS date)) FROM child",
        c=cutoff,
    )
    assert left == [(100_000 - expected[0], 0)]
    used = json.loads(cli(["approvals", "list", "--all", "--format", "json"], env).stdout)
    assert [(a["approval_id"], a["status"]) for a in used] == [(ident, "used")]
    assert [d["by"] for d in used[0]["decisions"]] == ["alice", "bob"]
    verified = cli(["audit", "verify"], env)
    assert verified.returncode == 0, verified.stderr


def test_holds_through_the_cli(tmp_path: Path) -> None:
    """holds add (a record, by its key), list and release; typos in the scope are refused."""
    product_url = f"sqlite:///{tmp_path / 'kidsapp.db'}"
    env = setup(tmp_path, product_url)
    kidsapp.create(product_url, [(1, 1, None), (2, 1, None)])

    bad = cli(["holds", "add", "--customer", "kdv-x", *_hold_args()], env)
    assert bad.returncode == 2
    assert "unknown customer 'kdv-x'; known: kdv-a, kdv-b" in bad.stderr
    record = ["holds", "add", "--customer", "kdv-a", "--product", "kidsapp", "--table", "child"]
    parts = cli([*record, "--key", "1", "--key", "2", *_hold_args()], env)
    assert parts.returncode == 2
    assert "the key of child has 1 part(s) (id)" in parts.stderr
    on_rule = ["holds", "add", "--customer", "kdv-a", "--product", "kidsapp", "--rule", "nope"]
    rule = cli([*on_rule, *_hold_args()], env)
    assert rule.returncode == 2 and "has no rule 'nope'" in rule.stderr

    placed = cli([*record, "--key", "2", *_hold_args()], env)
    assert placed.returncode == 0, placed.stderr
    hold_id = placed.stdout.split()[1]
    listed = json.loads(cli(["holds", "list", "--format", "json"], env).stdout)
    assert [(h["hold_id"], h["scope"], h["matter"]) for h in listed] == [
        (hold_id, "record", "M-2026-17")
    ]
    assert len(listed[0]["key_hash"]) == 64 and "2" not in listed[0]["table"]

    released = cli(["holds", "release", hold_id, "--by", "bob", "--reason", "closed"], env)
    assert released.returncode == 0, released.stderr
    twice = cli(["holds", "release", hold_id, "--by", "bob", "--reason", "closed again"], env)
    assert twice.returncode == 2 and "already released" in twice.stderr
    assert "No holds in force." in cli(["holds", "list"], env).stdout
    history = json.loads(cli(["holds", "list", "--all", "--format", "json"], env).stdout)
    assert history[0]["released_by"] == "bob"
    assert cli(["audit", "verify"], env).returncode == 0


def _hold_args() -> list[str]:
    return ["--matter", "M-2026-17", "--reason", "data-breach dossier", "--by", "alice"]
