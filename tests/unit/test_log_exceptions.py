"""A logged exception never carries a driver's text: the chain's types and frames are shown,
a driver error only as its description, whatever logs it and however it escapes."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import psycopg.errors as pg
import pymysql.err as my
import pytest
import sqlalchemy.exc as sa_exc
import structlog

from connectors.base import ConnectorError
from connectors.errors import wrap_errors
from tests.support import REPO
from worker.logging import configure_logging

# Built at run time, so that no source line of a traceback holds them.
NAME = " ".join(["Johanna", "de", "Vries-Bakker"])
EMAIL = "@".join(["johanna.devries", "example.nl"])
BSN = "".join(["1234", "56782"])
VALUES = (NAME, EMAIL, BSN)
TRIGGER_TEXT = f"user {NAME} has email {EMAIL} and BSN {BSN}"


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    structlog.reset_defaults()
    for handler in [h for h in root.handlers if h.name == "retention-worker"]:
        root.removeHandler(handler)
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks


def _driver_error(orig: BaseException) -> sa_exc.DBAPIError:
    """As SQLAlchemy raises it: statement and parameters hold the values, the cause is the
    driver's error."""
    wrapped = sa_exc.DBAPIError.instance(
        "DELETE FROM child WHERE email = %(email)s", {"email": EMAIL}, orig, Exception
    )
    wrapped.__cause__ = orig
    return wrapped


def _connector_error(orig: BaseException) -> ConnectorError:
    try:
        with wrap_errors("cannot delete rows of child"):
            raise _driver_error(orig)
    except ConnectorError as exc:
        return exc
    raise AssertionError("wrap_errors raised nothing")


ORIGINS = [
    pg.RaiseException(TRIGGER_TEXT),
    my.OperationalError(1644, TRIGGER_TEXT, sqlstate="45000"),
    my.IntegrityError(1062, f"Duplicate entry '{EMAIL}' for key 'uq_email'", sqlstate="23000"),
]


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _leaks(text: str) -> list[str]:
    return [value for value in VALUES if value in text]


@pytest.mark.parametrize("orig", ORIGINS, ids=["pg raise", "mariadb signal", "duplicate"])
@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_logged_chain_shows_types_and_descriptions_but_no_value(
    orig: BaseException, fmt: str
) -> None:
    """structlog's log.exception and standard logging's exc_info render the chain
    (ConnectorError ← SQLAlchemy ← driver) with every type and no value, as JSON and for
    the console."""
    out = io.StringIO()
    configure_logging("DEBUG", fmt, out)
    error = _connector_error(orig)
    assert _leaks(str(error.__cause__)) != []  # the cause's own text has them
    try:
        raise error
    except ConnectorError:
        structlog.get_logger("worker.run").exception("run.crashed")
        logging.getLogger("apscheduler.executors").exception("job failed")
    text = out.getvalue()
    assert _leaks(text) == []
    assert text.count(type(orig).__name__) >= 2
    # ConnectorError, or RowsRefused for the duplicate (a constraint refusing rows)
    assert text.count(f"{type(error).__name__}: cannot delete rows of child") == 2
    assert "The above exception was the direct cause of the following exception" in text


def test_an_exception_given_as_a_value_is_described_not_printed() -> None:
    """`log.warning(..., error=exc)` shows the exception's safe message."""
    out = io.StringIO()
    configure_logging("DEBUG", "json", out)
    driver = _driver_error(ORIGINS[0])
    structlog.get_logger("t").warning("db.retry", error=driver, cause=driver.__cause__)
    [line] = _lines(out)
    assert _leaks(json.dumps(line)) == []
    assert line["error"].startswith("RaiseException [SQLSTATE P0001]: raised by a trigger")
    assert line["cause"].startswith("[SQLSTATE P0001]: raised by a trigger")


UNCAUGHT = """
import sys, threading
import psycopg.errors as pg
import sqlalchemy.exc as sa_exc
from connectors.errors import wrap_errors
from worker.logging import configure_logging

configure_logging("INFO", "json", sys.stderr)
text = " ".join(sys.argv[1:])

def fail():
    orig = pg.RaiseException(text)
    with wrap_errors("cannot delete rows of child"):
        raise sa_exc.DBAPIError.instance("DELETE", {"v": text}, orig, Exception) from orig

thread = threading.Thread(target=fail, name="batch-thread")
thread.start()
thread.join()
fail()
"""


def test_an_uncaught_exception_is_logged_without_its_values() -> None:
    """An exception nothing catches, in the main thread or another, is one JSON line
    (`process.crashed`, `thread.crashed`) rendered safely, not Python's raw traceback."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(UNCAUGHT), *TRIGGER_TEXT.split()],
        cwd=str(REPO / "tests"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert _leaks(result.stderr + result.stdout) == []
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert [e["event"] for e in events] == ["thread.crashed", "process.crashed"]
    assert events[0]["thread"] == "batch-thread"
    for event in events:
        assert event["level"] == "critical"
        assert "ConnectorError: cannot delete rows of child: RaiseException" in event["exception"]
