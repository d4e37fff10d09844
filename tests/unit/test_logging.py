"""Log lines are JSON with stable event names, carry the run context and never show secrets."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
import structlog

import worker
from worker.events import (
    BatchApplied,
    BatchFailed,
    BatchIntent,
    ConfigLoaded,
    ConnectorStatus,
    Event,
    Outcome,
    RuleEvaluated,
    RunFinished,
    RunStarted,
)
from worker.logging import LogSubscriber, bind_run, configure_logging, mask_text

AT = dt.datetime(2025, 3, 1, 2, 30, tzinfo=dt.UTC)


class RunIds(TypedDict):
    run_id: str
    customer: str
    product: str


class RuleIds(RunIds):
    rule: str
    action: str
    table: str


RUN: RunIds = {"run_id": "run-7", "customer": "kdv-zonnestraal", "product": "flexkids"}
COMMON: RuleIds = {**RUN, "rule": "child.contact", "action": "anonymise", "table": "children"}
SECRET = "hunter2-s3cret"


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    structlog.reset_defaults()
    for handler in [h for h in root.handlers if h.name == "retention-worker"]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def stream() -> io.StringIO:
    out = io.StringIO()
    configure_logging("DEBUG", "json", out)
    return out


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def run_events() -> list[Event]:
    return [
        ConfigLoaded(valid=True, problems=0),
        ConnectorStatus("kdv-zonnestraal", "flexkids", up=True),
        RunStarted(**RUN, at=AT),
        RuleEvaluated(
            **COMMON,
            eligible=3,
            lag_seconds=60.0,
            cutoff=dt.date(2023, 3, 1),
            period="P2Y",
            source="catalogue",
        ),
        BatchIntent(**COMMON, batch=1, key_hashes=("hash-aaa", "hash-bbb"), cutoff=AT.date()),
        BatchApplied(
            **COMMON, batch=1, rows={"children": 2}, categories=("contact",), duration_seconds=0.1
        ),
        BatchFailed(**COMMON, batch=2, error="deadlock detected", duration_seconds=0.2),
        RunFinished(
            **RUN,
            outcome=Outcome.SUCCEEDED,
            at=AT,
            duration_seconds=4.0,
            processed={("child.contact", "anonymise"): {"children": 2}},
        ),
    ]


def connect() -> None:
    raise ConnectionError(f"cannot reach postgresql://app:{SECRET}@db/flexkids (password={SECRET})")


def fail_run() -> None:
    try:
        connect()
    except ConnectionError as exc:
        raise RuntimeError("the run failed") from exc


def test_every_line_is_json_with_event_level_and_utc_timestamp(stream: io.StringIO) -> None:
    """Each line is one JSON object with event, level and an ISO timestamp in UTC."""
    log = structlog.get_logger("test")
    log.info("first.thing", count=3)
    log.warning("second.thing")
    parsed = lines(stream)
    assert [p["event"] for p in parsed] == ["first.thing", "second.thing"]
    assert [p["level"] for p in parsed] == ["info", "warning"]
    for p in parsed:
        stamp = dt.datetime.fromisoformat(p["timestamp"])
        assert stamp.utcoffset() == dt.timedelta(0)
    assert parsed[0]["count"] == 3


def test_bind_run_binds_context_to_every_line_and_unbinds(stream: io.StringIO) -> None:
    """Inside bind_run every line carries run id, customer and product; after it none do."""
    log = structlog.get_logger("test")
    with bind_run("run-7", "kdv-zonnestraal", "flexkids"):
        log.info("inside")
        logging.getLogger("apscheduler").info("library line")
    log.info("outside")
    inside, library, outside = lines(stream)
    for line in (inside, library):
        assert {k: line[k] for k in RUN} == RUN
    assert not set(RUN) & set(outside)


def test_nested_bind_run_restores_the_outer_run(stream: io.StringIO) -> None:
    """A nested bind_run restores the outer run's context when it ends."""
    log = structlog.get_logger("test")
    with bind_run("outer", "c1", "p1"):
        with bind_run("inner", "c2", "p2"):
            log.info("inner")
        log.info("outer")
    inner, outer = lines(stream)
    assert inner["run_id"] == "inner"
    assert (outer["run_id"], outer["customer"], outer["product"]) == ("outer", "c1", "p1")


def test_subscriber_logs_each_event_by_name_with_run_context(stream: io.StringIO) -> None:
    """LogSubscriber writes one line per event, named by the event, with the run's ids."""
    subscriber = LogSubscriber()
    events = run_events()
    with bind_run(**RUN):
        for event in events:
            subscriber(event)
    parsed = lines(stream)
    assert [p["event"] for p in parsed] == [e.name for e in events]
    for p in parsed[2:]:
        assert {k: p[k] for k in RUN} == RUN
    by_name = {p["event"]: p for p in parsed}
    assert by_name["batch.intent"]["keys"] == 2
    assert by_name["batch.applied"]["rows"] == {"children": 2}
    assert by_name["batch.applied"]["rows_total"] == 2
    assert by_name["batch.failed"]["level"] == "warning"
    assert by_name["run.finished"]["outcome"] == "succeeded"
    assert by_name["run.finished"]["rows_total"] == 2
    assert by_name["run.finished"]["processed"] == [
        {"rule": "child.contact", "action": "anonymise", "rows": {"children": 2}}
    ]
    assert by_name["rule.evaluated"]["cutoff"] == "2023-03-01"


def test_subscriber_never_logs_key_hashes(stream: io.StringIO) -> None:
    """Hashed record keys are logged as their count only, never the hashes themselves."""
    for event in run_events():
        LogSubscriber()(event)
    text = stream.getvalue()
    assert "hash-aaa" not in text
    assert "hash-bbb" not in text
    assert "key_hashes" not in text


def test_failed_run_is_an_error_line(stream: io.StringIO) -> None:
    """A failed run's line has level error and its error text."""
    LogSubscriber()(
        RunFinished(**RUN, outcome=Outcome.FAILED, at=AT, duration_seconds=1.0, error="boom")
    )
    (line,) = lines(stream)
    assert (line["event"], line["level"], line["error"]) == ("run.finished", "error", "boom")


def test_password_in_a_database_url_is_masked(stream: io.StringIO) -> None:
    """A password inside a postgresql URL, in the message or any value, is replaced by ***."""
    url = f"postgresql+psycopg://app:{SECRET}@db.internal:5432/flexkids"
    log = structlog.get_logger("test")
    log.info(f"connecting to {url}", url=url, nested={"urls": [url]})
    logging.getLogger("sqlalchemy.engine").warning("engine %s failed", url)
    text = stream.getvalue()
    assert SECRET not in text
    first, second = lines(stream)
    assert first["event"] == "connecting to postgresql+psycopg://app:***@db.internal:5432/flexkids"
    assert first["url"] == "postgresql+psycopg://app:***@db.internal:5432/flexkids"
    assert first["nested"] == {"urls": [first["url"]]}
    assert second["event"] == f"engine {first['url']} failed"


def test_secret_keys_are_masked(stream: io.StringIO) -> None:
    """Values of keys named like password, secret, pepper or token are replaced by ***."""
    structlog.get_logger("test").info(
        "settings", password=SECRET, pepper=SECRET, api_token=SECRET, extra={"db_secret": SECRET}
    )
    (line,) = lines(stream)
    assert SECRET not in stream.getvalue()
    assert line["password"] == line["pepper"] == line["api_token"] == "***"
    assert line["extra"] == {"db_secret": "***"}


def test_exception_shows_cause_chain_with_password_masked(stream: io.StringIO) -> None:
    """An exception is rendered with its cause, and a URL password inside it is masked."""
    log = structlog.get_logger("test")
    try:
        fail_run()
    except RuntimeError:
        log.exception("run.crashed")
    (line,) = lines(stream)
    assert SECRET not in stream.getvalue()
    exception = line["exception"]
    assert "The above exception was the direct cause of the following exception" in exception
    assert "ConnectionError: cannot reach postgresql://app:***@db/flexkids" in exception
    assert "fail_run" in exception
    assert "RuntimeError: the run failed" in exception
    assert line["level"] == "error"


def test_library_exception_is_masked_too(stream: io.StringIO) -> None:
    """An exception logged through standard logging is rendered and masked the same way."""
    try:
        connect()
    except OSError:
        logging.getLogger("apscheduler.executors").exception("job failed")
    (line,) = lines(stream)
    assert SECRET not in stream.getvalue()
    assert "password=***" in line["exception"]


def test_level_filters_lower_lines() -> None:
    """At level INFO, debug lines of structlog and of libraries are dropped."""
    out = io.StringIO()
    configure_logging("info", "json", out)
    structlog.get_logger("test").debug("hidden")
    logging.getLogger("lib").debug("hidden too")
    structlog.get_logger("test").info("shown")
    assert [p["event"] for p in lines(out)] == ["shown"]


def test_reconfiguring_replaces_the_stream() -> None:
    """Calling configure_logging again writes to the new stream only, with one handler."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", "json", first)
    configure_logging("INFO", "json", second)
    structlog.get_logger("test").info("once")
    assert first.getvalue() == ""
    assert [p["event"] for p in lines(second)] == ["once"]
    assert sum(h.name == "retention-worker" for h in logging.getLogger().handlers) == 1


def test_console_and_auto_formats() -> None:
    """console renders for people; auto is JSON on a pipe and console on a TTY."""
    console, pipe, tty = io.StringIO(), io.StringIO(), _TTY()
    configure_logging("INFO", "console", console)
    structlog.get_logger("test").info("hello.console", n=1)
    configure_logging("INFO", "auto", pipe)
    structlog.get_logger("test").info("hello.pipe")
    configure_logging("INFO", "auto", tty)
    structlog.get_logger("test").info("hello.tty")
    assert "hello.console" in console.getvalue()
    assert not console.getvalue().lstrip().startswith("{")
    assert lines(pipe)[0]["event"] == "hello.pipe"
    assert "hello.tty" in tty.getvalue()
    assert not tty.getvalue().lstrip().startswith("{")


@pytest.mark.parametrize(
    ("level", "fmt", "setting"),
    [("LOUD", "json", "RETENTION_LOG_LEVEL"), ("INFO", "xml", "RETENTION_LOG_FORMAT")],
)
def test_bad_level_or_format_says_what_to_set(level: str, fmt: str, setting: str) -> None:
    """An unknown level or format raises ValueError naming the setting and its choices."""
    with pytest.raises(ValueError, match=setting):
        configure_logging(level, fmt, io.StringIO())


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("mysql+pymysql://root:p@ss@h:3306/t", "mysql+pymysql://root:***@h:3306/t"),
        ("redis://:pw@h:6379", "redis://:***@h:6379"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
        ("postgresql://u@/db?host=/tmp&password=pw", "postgresql://u@/db?host=/tmp&password=***"),
        ("host=db password='a b' dbname=x", "host=db password=*** dbname=x"),
        ("see https://example.org/docs", "see https://example.org/docs"),
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    """mask_text masks URL and DSN passwords and leaves everything else as it was."""
    assert mask_text(text) == masked


def test_importing_configures_nothing() -> None:
    """Importing the worker's logging, metrics and http modules configures no logging."""
    code = (
        "import logging, structlog, worker.logging, worker.metrics, worker.http;"
        "print(structlog.is_configured(), len(logging.getLogger().handlers))"
    )
    root = Path(worker.__file__).parent.parent
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert result.stdout.split() == ["False", "0"]
