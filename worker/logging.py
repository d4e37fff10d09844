"""Structured logs: JSON lines by default, secrets masked in every line, run context bound.

Nothing is configured at import time: the CLI calls `configure_logging()` once. Logs of
libraries that use the standard `logging` module (APScheduler, SQLAlchemy, Alembic) go
through the same renderer and the same masking, so every line of the process has one shape.

Secrets: URL passwords and secret-named options are masked in every value
(`connectors.masking.mask_text`), and values of keys named like a secret are replaced by
`***`. Exceptions are rendered by worker/tracebacks.py: the whole chain with frames and
types, but a driver error's text never (only its class, code and names), so an e-mail address
in a trigger's message or a duplicate key cannot reach a line through a logged cause.

`LogSubscriber` turns run events into log lines with stable event names (`run.started`,
`batch.applied`, `run.finished`, …); `bind_run()` binds customer, product and run id to every
line written while a run is in progress.
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
from worker.events import (
    ApprovalChanged,
    BatchApplied,
    BatchBlocked,
    BatchFailed,
    BatchIntent,
    CheckpointMade,
    ConfigLoaded,
    ConnectorStatus,
    Event,
    HoldChanged,
    Outcome,
    PairSkipped,
    RuleEvaluated,
    RuleGated,
    RunFinished,
    RunStarted,
)
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


_OUTCOME_LEVEL = {
    Outcome.SUCCEEDED: logging.INFO,
    Outcome.PARTIAL: logging.WARNING,
    Outcome.INTERRUPTED: logging.WARNING,
    Outcome.FAILED: logging.ERROR,
}


class LogSubscriber:
    """EventBus subscriber: one log line per event, named by the event, with no personal data.

    Fields are counts, rule ids, table names, outcomes and durations; hashed record keys are
    logged as their count only.
    """

    def __init__(self, logger: Any = None) -> None:
        self._logger = logger if logger is not None else structlog.get_logger("worker.events")

    def __call__(self, event: Event) -> None:
        level, fields = _describe(event)
        self._logger.log(level, event.name, **fields)


def _run_fields(
    event: RunStarted
    | RuleEvaluated
    | RuleGated
    | BatchIntent
    | BatchApplied
    | BatchFailed
    | BatchBlocked
    | RunFinished
    | HoldChanged
    | ApprovalChanged,
) -> dict[str, Any]:
    return {"run_id": event.run_id, "customer": event.customer, "product": event.product}


def _describe(event: Event) -> tuple[int, dict[str, Any]]:
    """The level and the fields of the log line for `event`."""
    match event:
        case RunStarted():
            return logging.INFO, {
                **_run_fields(event),
                "dry_run": event.dry_run,
                "policy": event.policy,
                "as_of": event.as_of.isoformat() if event.as_of else None,
            }
        case RuleEvaluated():
            return logging.INFO, {
                **_run_fields(event),
                "rule": event.rule,
                "action": event.action,
                "table": event.table,
                "eligible": event.eligible,
                "lag_seconds": event.lag_seconds,
                "cutoff": event.cutoff.isoformat(),
                "period": event.period,
                "source": event.source,
                "held": event.held,
                "gate": event.gate,
            }
        case RuleGated():
            return logging.WARNING, {
                **_run_fields(event),
                "rule": event.rule,
                "action": event.action,
                "table": event.table,
                "gate": event.gate,
                "why": event.why,
                "eligible": event.eligible,
                "reasons": list(event.reasons),
                "approval_id": event.approval_id,
                "hold_ids": list(event.hold_ids),
            }
        case HoldChanged():
            return logging.INFO, {
                **_run_fields(event),
                "hold_id": event.hold_id,
                "scope": event.scope,
                "matter": event.matter,
                "by": event.by,
                "rule": event.rule,
                "table": event.table,
            }
        case ApprovalChanged():
            level = logging.WARNING if event.change == "requested" else logging.INFO
            return level, {
                **_run_fields(event),
                "rule": event.rule,
                "approval_id": event.approval_id,
                "status": event.status,
                "why": event.why,
                "eligible": event.eligible,
                "cutoff": event.cutoff.isoformat(),
                "by": event.by,
                "approvers": event.approvers,
                "approvers_needed": event.approvers_needed,
            }
        case BatchIntent():
            return logging.DEBUG, {
                **_run_fields(event),
                "rule": event.rule,
                "action": event.action,
                "table": event.table,
                "batch": event.batch,
                "keys": len(event.key_hashes),
                "cutoff": event.cutoff.isoformat(),
            }
        case BatchApplied():
            return logging.INFO, {
                **_run_fields(event),
                "rule": event.rule,
                "action": event.action,
                "table": event.table,
                "batch": event.batch,
                "rows": dict(event.rows),
                "rows_total": event.total,
                "categories": list(event.categories),
                "duration_seconds": event.duration_seconds,
                "held": len(event.held),
            }
        case BatchFailed():
            return logging.WARNING, {
                **_run_fields(event),
                "rule": event.rule,
                "action": event.action,
                "table": event.table,
                "batch": event.batch,
                "error": event.error,
                "duration_seconds": event.duration_seconds,
            }
        case BatchBlocked():  # counts and safe error text: never a key or a value
            return logging.WARNING, {
                **_run_fields(event),
                "rule": event.rule,
                "action": event.action,
                "table": event.table,
                "batch": event.batch,
                "blocked": event.total,
                "unresolved": event.unresolved,
                "errors": list(event.errors),
                "attempts": event.attempts,
            }
        case RunFinished():
            processed = [
                {"rule": rule, "action": action, "rows": dict(rows)}
                for (rule, action), rows in event.processed.items()
            ]
            fields = {
                **_run_fields(event),
                "outcome": str(event.outcome),
                "dry_run": event.dry_run,
                "duration_seconds": event.duration_seconds,
                "processed": processed,
                "rows_total": sum(sum(rows.values()) for rows in event.processed.values()),
            }
            if event.error is not None:
                fields["error"] = event.error
            return _OUTCOME_LEVEL.get(Outcome(event.outcome), logging.ERROR), fields
        case CheckpointMade():
            return logging.INFO, {
                "seq": event.seq,
                "hash": event.hash,
                "at": event.at.isoformat(),
                "key_id": event.key_id,
                "signature": event.signature,
            }
        case ConnectorStatus():
            level = logging.INFO if event.up else logging.WARNING
            return level, {"customer": event.customer, "product": event.product, "up": event.up}
        case ConfigLoaded():
            level = logging.INFO if event.valid else logging.ERROR
            return level, {"valid": event.valid, "problems": event.problems}
        case PairSkipped():
            return logging.INFO, {
                "customer": event.customer,
                "product": event.product,
                "tick": event.tick.isoformat(),
                "why": event.why,
                "holder": event.holder,
            }
    return logging.DEBUG, {}
