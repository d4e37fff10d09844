"""Structured logs: JSON lines by default, secrets masked in every line, run context bound.

Nothing is configured at import time: the CLI calls `configure_logging()` once. Logs of
libraries that use the standard `logging` module (APScheduler, SQLAlchemy, Alembic) go
through the same renderer and the same masking, so every line of the process has one shape.

Secrets: URL passwords and secret-named options are masked in every value
(`connectors.masking.mask_text`), and values of keys named like a secret are replaced by
`***`. Exceptions are rendered by worker/tracebacks.py: the whole chain with frames and
types, but a driver error's text never (only its class, code and names), so an e-mail address
in a trigger's message or a duplicate key cannot reach a line through a logged cause.

`LogSubscriber` (worker/loglines.py, re-exported here) turns run events into log lines with
stable event names (`run.started`, `batch.applied`, `run.finished`, …); `bind_run()` binds
customer, product and run id to every line written while a run is in progress.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import sys
import threading
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import IO, Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from connectors.masking import MASK, SECRET_NAME, mask_text
from worker.loglines import LogSubscriber
from worker.tracebacks import exc_info_of, exception_message, render_exception

__all__ = [
    "LogSubscriber",
    "bind_run",
    "configure_logging",
    "mask_secrets",
    "mask_text",
    "render_exc_info",
]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("json", "console", "auto")
_HANDLER_NAME = "retention-worker"


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, BaseException):
        return exception_message(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {
            k: MASK if isinstance(k, str) and _secret_name(k) else _mask_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask_value(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    # Anything else is rendered as text anyway (an exception, a URL object): mask that text.
    return mask_text(str(value))


@functools.lru_cache(maxsize=1024)
def _secret_name(key: str) -> bool:
    """Whether a field named `key` holds a secret (its value is masked whole). Asked for
    every field of every line; the names are the code's own and few, hence the cache."""
    return SECRET_NAME.search(key) is not None


def mask_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask URL passwords in every value, and values of secret keys."""
    return {
        key: MASK if _secret_name(key) else _mask_value(value) for key, value in event_dict.items()
    }


def render_exc_info(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: `exc_info` becomes `exception`, the text of the whole chain with
    frames and types but only safe messages (worker/tracebacks.py): a driver error's text,
    kept as a cause, never reaches the line. No frame locals."""
    exc_info = exc_info_of(event_dict.pop("exc_info", None))
    if exc_info is not None:
        event_dict["exception"] = render_exception(exc_info[1])
    return event_dict


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """sys.excepthook: an exception nothing caught is logged like any other (safe messages)
    instead of Python printing its raw traceback; Ctrl-C keeps Python's own short output."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    structlog.get_logger("worker").critical("process.crashed", exc_info=(exc_type, exc, tb))


def _log_thread_uncaught(args: threading.ExceptHookArgs) -> None:
    """threading.excepthook: as `_log_uncaught`, for a thread's exception."""
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    structlog.get_logger("worker").critical(
        "thread.crashed",
        thread=args.thread.name if args.thread is not None else None,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


QUIET_LIBRARIES = ("alembic", "apscheduler")


def configure_logging(
    level: str = "INFO", fmt: str = "json", stream: IO[str] | None = None
) -> None:
    """Route structlog and standard logging to `stream` (default stderr) as JSON or console.

    `fmt` is "json" (one object per line), "console" (for people) or "auto" (console on a
    TTY, else JSON). Calling it again replaces the previous configuration. Also installs
    `sys.excepthook` and `threading.excepthook`, so an exception nothing catches becomes a
    `process.crashed` / `thread.crashed` line rendered the same safe way.
    """
    name = level.upper()
    if name not in LEVELS:
        raise ValueError(
            f"log level {level!r} is not known; set RETENTION_LOG_LEVEL to one of "
            f"{', '.join(LEVELS)}"
        )
    if fmt not in FORMATS:
        raise ValueError(
            f"log format {fmt!r} is not known; set RETENTION_LOG_FORMAT to one of "
            f"{', '.join(FORMATS)}"
        )
    out = stream if stream is not None else sys.stderr
    tty = _isatty(out)
    console = fmt == "console" or (fmt == "auto" and tty)
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=tty)
        if console
        else structlog.processors.JSONRenderer()
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        # Text with the whole chain ("The above exception was the direct cause …"), with
        # only safe messages (a driver's text never), passwords masked, no frame locals.
        render_exc_info,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            mask_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.name = _HANDLER_NAME
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.name == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(name)
    # Libraries speak at INFO about their own plumbing (plugin set-up, job added); the
    # worker logs its own events, so theirs show only when something is wrong, or at DEBUG.
    for library in QUIET_LIBRARIES:
        logging.getLogger(library).setLevel(name if name == "DEBUG" else "WARNING")
    # An exception nothing catches is logged the same way, not printed raw by Python.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_uncaught
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[name]),
        cache_logger_on_first_use=False,
    )


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


@contextlib.contextmanager
def bind_run(run_id: str, customer: str, product: str) -> Iterator[None]:
    """Bind run id, customer and product to every log line inside the block, then unbind."""
    with structlog.contextvars.bound_contextvars(run_id=run_id, customer=customer, product=product):
        yield
