"""No password in any error that is logged, stored or printed, whatever form its URL has.

A password in every form a database URL can carry it (user part, raw `@`, a raw `:` after a
raw `@`, %-escapes, `?password=`, `&password=`, `sslpassword=`, a keyword DSN), for an
unreachable PostgreSQL and a MariaDB that refuses the log-in, through `run --once`,
`validate` and `plan`, and as the state database's URL through `migrate` and `run --once`:
searched in stdout, stderr (JSON logs at DEBUG) and the state database.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa

from tests.acceptance.harness import cli
from tests.integration.leaks import (
    ACTIONS,
    CUSTOMERS,
    URL_ENV,
    leaks,
    product,
    state_bytes,
    state_text,
)
from tests.integration.own_config import write_config
from tests.support import PEPPER


def _secret() -> str:
    return f"Pw{uuid.uuid4().hex[:12]}"


def password_forms(mariadb: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """name → (URL, the strings that must appear nowhere). PostgreSQL on a closed port
    (unreachable); MariaDB at `mariadb`, which refuses root with a password."""
    pg = "postgresql+psycopg://app{}@127.0.0.1:1/kids{}"
    server = sa.make_url(mariadb)
    my = f"mysql+pymysql://root{{}}@{server.host}:{server.port or 3306}/test{{}}"
    forms: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name, template, user, query in (
        ("user", pg, ":{}", ""),
        ("query", pg, "", "?password={}"),
        ("and", pg, "", "?connect_timeout=5&password={}"),
        ("ssl", pg, "", "?sslmode=disable&sslpassword={}"),
        ("my-user", my, ":{}", ""),
        ("my-query", my, "", "?charset=utf8mb4&password={}"),
    ):
        secret = _secret()
        forms[name] = (template.format(user.format(secret), query.format(secret)), (secret,))
    head, tail = _secret(), _secret()
    forms["raw-at"] = (pg.format(f":{head}@{tail}", ""), (head, tail))
    odd = f"{head}@:/?%{tail}"
    forms["escaped"] = (pg.format(f":{quote(odd, safe='')}", ""), (head, tail))
    forms["escaped-query"] = (pg.format("", f"?password={quote_plus(odd)}"), (head, tail))
    forms["raw-colon"] = (pg.format(f":{head}@{tail}:x", ""), (head, tail))
    dsn = _secret()
    forms["keyword-dsn"] = (f"host=127.0.0.1 port=1 dbname=kids password={dsn}", (dsn,))
    # One database per customer: two customers on one database would be set aside together
    # (one database spelled two ways) before any password could be printed.
    return {
        name: (url.replace("1/kids", f"1/kids{i}", 1).replace("/test", f"/test{i}", 1), found)
        for i, (name, (url, found)) in enumerate(forms.items())
    }


def _customers(forms: dict[str, Any]) -> dict[str, str]:
    return {
        name: f"products:\n  kids:\n    database: {{url_env: {_var(name)}}}\n" for name in forms
    }


def _var(name: str) -> str:
    return f"URL_{name.upper().replace('-', '_')}"


@pytest.mark.postgres
@pytest.mark.mariadb
def test_no_password_in_any_url_form_reaches_output_or_state(
    mariadb_server_url: str, pg_server_url: str, tmp_path: Path
) -> None:
    """One customer per URL form, all failing to connect: `run --once`, `validate` and `plan`
    fail for each pair and print none of the passwords; the state database holds none."""
    forms = password_forms(mariadb_server_url)
    write_config(tmp_path / "config", product(ACTIONS["delete"]), _customers(forms))
    state = f"sqlite:///{tmp_path / 'state.db'}"
    env = {
        **os.environ,
        **{_var(name): url for name, (url, _) in forms.items()},
        "RETENTION_CONFIG_DIR": str(tmp_path / "config"),
        "RETENTION_STATE_URL": state,
        "RETENTION_PEPPER": PEPPER.decode(),
        "RETENTION_LOG_FORMAT": "json",
        "RETENTION_LOG_LEVEL": "DEBUG",
        "RETENTION_RETRY_BUDGET_SECONDS": "0",
    }
    secrets = tuple(s for _, found in forms.values() for s in found)
    assert cli(["migrate"], env).returncode == 0

    runs = cli(["run", "--once"], env)
    validated = cli(["validate"], env)
    planned = cli(["plan", "--format", "json"], env)

    assert runs.returncode == 1, runs.stderr[-2000:]
    assert runs.stdout.count("FAILED") == len(forms)
    assert validated.returncode in (1, 2)
    # A keyword DSN, and a raw ":" after a raw "@", do not parse: said without the URL; a
    # password in pymysql's query string is refused before any connection, masked.
    assert validated.stderr.count("unreachable: ") == len(forms) - 3
    assert validated.stderr.count("the database URL is not valid") == 2
    assert "URL_MY_QUERY is not usable" in validated.stderr
    assert planned.returncode == 1
    pairs = json.loads(planned.stdout)["pairs"]
    assert [p["outcome"] for p in pairs] == ["failed"] * len(forms)
    assert "port 1 failed: Connection refused" in runs.stdout
    assert "Access denied for user ?@? (using password: YES)" in runs.stdout
    shown = [r.stdout + r.stderr for r in (runs, validated, planned)]
    assert [leaks(text, secrets) for text in shown] == [[], [], []]
    assert leaks(state_text(state), secrets) == []
    assert leaks(state_bytes(tmp_path), secrets) == []


@pytest.mark.postgres
def test_no_password_of_the_state_databases_url_is_printed(
    pg_server_url: str, mariadb_server_url: str, tmp_path: Path
) -> None:
    """RETENTION_STATE_URL in each form, unreachable: `migrate` and `run --once` fail and
    print none of its passwords."""
    write_config(tmp_path / "config", product(ACTIONS["delete"]), CUSTOMERS)
    base = {
        **os.environ,
        URL_ENV: "sqlite:///" + str(tmp_path / "kids.db"),
        "RETENTION_CONFIG_DIR": str(tmp_path / "config"),
        "RETENTION_PEPPER": PEPPER.decode(),
        "RETENTION_LOG_FORMAT": "json",
        "RETENTION_RETRY_BUDGET_SECONDS": "0",
    }
    forms = password_forms(mariadb_server_url)
    for name in ("user", "query", "and", "ssl", "raw-at", "escaped", "raw-colon", "keyword-dsn"):
        url, secrets = forms[name]
        env = {**base, "RETENTION_STATE_URL": url}
        for args in (["migrate"], ["run", "--once"]):
            result = cli(args, env)
            assert result.returncode != 0, (name, args)
            assert "state database" in result.stderr, (name, args, result.stderr[-500:])
            assert leaks(result.stdout + result.stderr, secrets) == [], (name, args)
