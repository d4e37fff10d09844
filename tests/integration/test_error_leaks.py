"""No personal value in any error that is logged, stored or raised: a trigger quoting the row.

A product trigger refuses DELETE and UPDATE with a message quoting the row (a name, an e-mail
address, a BSN), on real PostgreSQL (`RAISE EXCEPTION`, `RAISE … USING ERRCODE, CONSTRAINT`)
and MariaDB (`SIGNAL SQLSTATE '45000'`, a `SIGNAL` posing as a duplicate entry). The worker
runs the pair as `run --once` does (worker.app.run_pairs, a state store, the log subscriber
writing JSON at DEBUG into a captured stream); the values are searched in every log line,
every row of every state table, the state database's bytes, the run report, the events, the
connector's exception and its rendered traceback. Once through the CLI too. And the state
database's own errors. Passwords in URLs: test_password_leaks.py.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from sqlalchemy.pool import NullPool

from connectors.base import Change, ColumnMask, ConnectorError, Mask, Table, Target
from connectors.sql import SqlConnector
from tests.acceptance.harness import cli
from tests.integration import leaks as search
from tests.integration.leaks import (
    ACTIONS,
    CUSTOMERS,
    RULE,
    URL_ENV,
    product,
    state_bytes,
    state_text,
)
from tests.integration.own_config import execute, write_config
from tests.support import NOW, PEPPER, Recorder
from worker.app import build_runner, run_pairs, subscribe_state
from worker.errors import StateError
from worker.events import BatchFailed, EventBus, Outcome, RunFinished
from worker.logging import LogSubscriber, configure_logging
from worker.retry import RetryPolicy
from worker.state import StateStore
from worker.tracebacks import render_exception

# Built at run time: no source line (which a traceback prints) holds them.
NAME = " ".join(["Johanna", "de", "Vries-Bakker"])
EMAIL = "@".join(["johanna.devries", "example.nl"])
BSN = "".join(["1234", "56782"])
VALUES = (NAME, EMAIL, BSN)
LEFT = dt.date(2020, 1, 1)  # expired: the rule keeps a child 12 months after it left


def leaks(text: str) -> list[str]:
    """The person's values found in `text`."""
    return search.leaks(text, VALUES)


PG_TRIGGERS = [
    """CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'refused: % <%> BSN %', OLD.name, OLD.email, OLD.bsn
        USING DETAIL = 'row of ' || OLD.email, HINT = 'ask ' || OLD.name;
    END $$""",
    "CREATE TRIGGER refuse_delete BEFORE DELETE ON child FOR EACH ROW "
    "EXECUTE FUNCTION refuse_delete()",
    # A trigger posing as a unique violation, with row values as message and constraint.
    """CREATE FUNCTION refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION USING ERRCODE = 'unique_violation', CONSTRAINT = OLD.email,
        MESSAGE = OLD.name || ' ' || OLD.email || ' ' || OLD.bsn;
    END $$""",
    "CREATE TRIGGER refuse_update BEFORE UPDATE ON child FOR EACH ROW "
    "EXECUTE FUNCTION refuse_update()",
]
MARIADB_TRIGGERS = [
    """CREATE TRIGGER refuse_delete BEFORE DELETE ON child FOR EACH ROW
    BEGIN
      DECLARE msg VARCHAR(255);
      SET msg = CONCAT('refused: ', OLD.name, ' <', OLD.email, '> BSN ', OLD.bsn);
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = msg;
    END""",
    # A SIGNAL posing as a duplicate entry, the e-mail address where the value goes.
    """CREATE TRIGGER refuse_update BEFORE UPDATE ON child FOR EACH ROW
    BEGIN
      DECLARE msg VARCHAR(255);
      SET msg = CONCAT('Duplicate entry ''', OLD.email, ' ', OLD.bsn, ''' for key ''uq''');
      SIGNAL SQLSTATE '23000' SET MYSQL_ERRNO = 1062, MESSAGE_TEXT = msg;
    END""",
]
CODES = {
    ("postgresql", "delete"): "[SQLSTATE P0001]",
    ("postgresql", "anonymise"): "[SQLSTATE 23505]",
    ("mysql", "delete"): "[errno 1644, SQLSTATE 45000]",
    ("mysql", "anonymise"): "[errno 1062, SQLSTATE 23000]",
}


def seed_refusing_child(url: str) -> None:
    """child with three expired rows, the first holding the person's values, and triggers
    that refuse DELETE and UPDATE with a message quoting them."""
    execute(
        url,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, name VARCHAR(100), email VARCHAR(100), "
        "bsn VARCHAR(9), left_on DATE)",
    )
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO child VALUES (:id, :name, :email, :bsn, :left_on)"),
                [
                    {"id": 1, "name": NAME, "email": EMAIL, "bsn": BSN, "left_on": LEFT},
                    {
                        "id": 2,
                        "name": "Kind 2",
                        "email": "k2@example.org",
                        "bsn": "2",
                        "left_on": LEFT,
                    },
                    {
                        "id": 3,
                        "name": "Kind 3",
                        "email": "k3@example.org",
                        "bsn": "3",
                        "left_on": LEFT,
                    },
                ],
            )
    finally:
        engine.dispose()
    backend = sa.make_url(url).get_backend_name()
    execute(url, *(PG_TRIGGERS if backend == "postgresql" else MARIADB_TRIGGERS))


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Logging configured as the CLI does (JSON, DEBUG) into a stream; restored afterwards."""
    root = logging.getLogger()
    level = root.level
    hooks = sys.excepthook, threading.excepthook
    out = io.StringIO()
    configure_logging("DEBUG", "json", out)
    yield out
    structlog.reset_defaults()
    for handler in [h for h in root.handlers if h.name == "retention-worker"]:
        root.removeHandler(handler)
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks


def _product_url(request: pytest.FixtureRequest, backend: str) -> str:
    url = request.getfixturevalue("pg_url" if backend == "postgresql" else "mariadb_url")
    assert isinstance(url, str)
    return url


BACKENDS = [
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mariadb),
]


# --- 1. a trigger quoting the row -------------------------------------------------------------


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_trigger_quoting_the_row_leaks_nothing_into_logs_state_or_report(
    request: pytest.FixtureRequest,
    backend: str,
    action: str,
    tmp_path: Path,
    captured_logs: io.StringIO,
) -> None:
    """The run fails on the trigger with an error that names the operation, the table and
    the code; no name, e-mail or BSN is in a log line, a state row, the report or an event."""
    url = _product_url(request, backend)
    seed_refusing_child(url)
    config = write_config(tmp_path / "config", product(ACTIONS[action]), CUSTOMERS)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(state_url)
    store.migrate()
    bus, recorder = EventBus(), Recorder()
    subscribe_state(bus, store, lambda: NOW)
    bus.subscribe(LogSubscriber())
    bus.subscribe(recorder)
    runner = build_runner(
        config,
        {URL_ENV: url},
        bus,
        pepper=PEPPER,
        clock=lambda: NOW,
        retry=RetryPolicy(budget_seconds=0),
        store=store,
    )
    try:
        [report] = run_pairs(runner, config.pairs(), NOW, dry_run=False)
    finally:
        store.close()

    error = report.error or ""
    logs = captured_logs.getvalue()
    assert leaks(logs) == []
    assert leaks(state_text(state_url)) == []
    assert leaks(state_bytes(tmp_path)) == []
    assert leaks(error) == []
    assert leaks(repr(recorder.events)) == []
    lines = [json.loads(line) for line in logs.splitlines()]
    code = CODES[(backend, action)]
    if action == "anonymise":
        # The forged unique violation is a refusal of those rows: each is tried alone and
        # reported blocked (worker/isolation.py); the refusal says its code, no value.
        assert report.outcome is Outcome.PARTIAL and report.blocked == 3 and not error
        (blocked,) = [line for line in lines if line["event"] == "batch.blocked"]
        assert blocked["blocked"] == 3
        assert all(e.startswith("cannot anonymise rows of child: ") for e in blocked["errors"])
        assert all(code in e for e in blocked["errors"])
        return
    # What the error does say: the rule, the operation, the table and the code.
    assert report.outcome is Outcome.FAILED
    assert error.startswith(f"rule {RULE}: cannot delete rows of child: ")
    assert code in error
    failed = [line for line in lines if line["event"] in ("batch.failed", "run.finished")]
    assert [line["event"] for line in failed] == ["batch.failed", "run.finished"]
    assert all(code in line["error"] for line in failed)
    events = [e for e in recorder.events if isinstance(e, BatchFailed | RunFinished)]
    assert [e.error for e in events] == [error.removeprefix(f"rule {RULE}: "), error]


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_connectors_exception_and_its_traceback_hold_no_value(
    request: pytest.FixtureRequest, backend: str, action: str
) -> None:
    """The ConnectorError's message and its rendered chain hold no value, though the driver
    error it keeps as its cause does (the trigger really quoted the row)."""
    url = _product_url(request, backend)
    seed_refusing_child(url)
    masks = (ColumnMask("name", Mask.FIXED, "x"),) if action == "anonymise" else ()
    target = Target(
        Table("child", key=("id",)),
        None,
        "left_on",
        dt.date(2025, 1, 1),
        dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        masks=masks,
    )
    connector = SqlConnector(url, pepper=PEPPER)
    connector.open()
    try:
        with pytest.raises(ConnectorError) as caught:
            connector.apply(target, Change(action), [(1,)])
    finally:
        connector.close()
    exc = caught.value
    assert leaks(str(exc.__cause__)) != []
    assert leaks(str(exc)) == []
    assert leaks(render_exception(exc)) == []
    assert CODES[(backend, action)] in str(exc)


@pytest.mark.postgres
def test_the_cli_prints_and_stores_no_value_of_a_refusing_trigger(
    pg_url: str, tmp_path: Path
) -> None:
    """`run --once` as a subprocess: exit 1, and no value in stdout, stderr or the state
    database."""
    seed_refusing_child(pg_url)
    write_config(tmp_path / "config", product(ACTIONS["delete"]), CUSTOMERS)
    env = {
        **os.environ,
        URL_ENV: pg_url,
        "RETENTION_CONFIG_DIR": str(tmp_path / "config"),
        "RETENTION_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "RETENTION_PEPPER": PEPPER.decode(),
        "RETENTION_LOG_FORMAT": "json",
        "RETENTION_LOG_LEVEL": "DEBUG",
    }
    assert cli(["migrate"], env).returncode == 0
    result = cli(["run", "--once"], env)
    assert leaks(result.stdout + result.stderr) == []
    assert leaks(state_text(env["RETENTION_STATE_URL"])) == []
    assert leaks(state_bytes(tmp_path)) == []
    assert result.returncode == 1, result.stderr[-2000:]
    assert "a × kids: FAILED" in result.stdout
    assert "cannot delete rows of child: RaiseException [SQLSTATE P0001]" in result.stdout
    assert '"batch.failed"' in result.stderr


STATE_INSERT = sa.text(
    "INSERT INTO runs (run_id, customer, product, started_at, dry_run, rows_changed) "
    "VALUES (:run_id, 'a', 'kids', :at, false, :rows)"
)


@pytest.mark.parametrize(
    ("kind", "first", "again"),
    [
        ("sqlite", {"run_id": EMAIL, "rows": 0}, {"run_id": EMAIL, "rows": 0}),
        pytest.param(
            "postgresql",
            {"run_id": EMAIL, "rows": 0},
            {"run_id": EMAIL, "rows": 0},
            marks=pytest.mark.postgres,
        ),
        pytest.param(
            "postgresql",
            {"run_id": "r1", "rows": 0},
            {"run_id": "r2", "rows": EMAIL},
            marks=pytest.mark.postgres,
        ),
    ],
    ids=["sqlite-duplicate", "postgresql-duplicate", "postgresql-invalid-integer"],
)
def test_a_state_database_error_holds_no_value(
    request: pytest.FixtureRequest,
    kind: str,
    first: dict[str, Any],
    again: dict[str, Any],
    tmp_path: Path,
) -> None:
    """A StateError's message reduces the driver's error as the connectors do: a duplicate
    key (PostgreSQL's DETAIL quotes it) or a value the column refuses (its first line quotes
    it) is named by code, table and column only."""
    url = (
        f"sqlite:///{tmp_path / 'state.db'}"
        if kind == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    store = StateStore(url)
    store.migrate()
    try:
        store.write(
            "inserting a run", lambda conn: conn.execute(STATE_INSERT, {**first, "at": NOW})
        )
        with pytest.raises(StateError) as caught:
            store.write(
                "inserting another", lambda conn: conn.execute(STATE_INSERT, {**again, "at": NOW})
            )
    finally:
        store.close()
    message = str(caught.value)
    assert EMAIL in str(caught.value.__cause__)
    assert EMAIL not in message
    assert EMAIL not in render_exception(caught.value)
    assert "failed while inserting another: " in message
