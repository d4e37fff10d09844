"""Exceptions as a log line shows them: frames and types in full, messages only when safe.

A logged exception is rendered with its whole chain ("The above exception was the direct
cause of the following exception") and its frames (file, line, function, source line; never
frame locals, which could hold row values). Each exception's message is shown as follows:

- the worker's own errors (`RetentionError`, `ConnectorError` and their subclasses): their
  text, with passwords masked. Their messages are built from our own wording and from
  `connectors.redact.describe`, never from a driver's text;
- a driver's error (SQLAlchemy's, psycopg's, pymysql's, sqlite3's): its description
  (class, SQLSTATE or error number, names), never its text: a trigger's message or a
  duplicate key's value would be in it, and SQLAlchemy adds the SQL and its parameters;
- anything else: its first line with quoted literals replaced by `?` and passwords masked
  (`connectors.redact.scrub`); notes (`add_note`) are left out.

So a cause kept with `raise … from exc` is safe to log: its text never reaches the line.
"""

from __future__ import annotations

import sys
import traceback
from types import TracebackType

from connectors.base import ConnectorError
from connectors.masking import mask_text
from connectors.redact import is_driver_error, reduce, scrub
from worker.errors import RetentionError

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

_CAUSE = "\n\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\n\nDuring handling of the above exception, another exception occurred:\n\n"
_MAX_CHAIN = 50


def exception_message(exc: BaseException) -> str:
    """The message of `exc` as fit for a log line, a stored error or a printed one."""
    if isinstance(exc, RetentionError | ConnectorError):
        return mask_text(str(exc))
    if is_driver_error(exc):
        reduced = reduce(exc)
        return reduced.message() if reduced.kind == type(exc).__name__ else str(reduced)
    return scrub(str(exc))


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def _one(exc: BaseException) -> str:
    """One link of a chain: its frames, then `type: safe message`."""
    frames = traceback.format_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    head = "Traceback (most recent call last):\n" if frames else ""
    message = exception_message(exc)
    last = f"{_type_name(exc)}: {message}" if message else _type_name(exc)
    text = head + "".join(frames) + last
    if isinstance(exc, BaseExceptionGroup):
        for number, inner in enumerate(exc.exceptions, 1):
            nested = render_exception(inner).replace("\n", "\n  | ")
            text += f"\n  +-- sub-exception {number}:\n  | {nested}"
    return text


def render_exception(exc: BaseException) -> str:
    """The traceback text of `exc` and its causes and contexts, oldest first, with safe
    messages only (see the module docstring)."""
    links: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    joint = ""
    while current is not None and id(current) not in seen and len(links) < _MAX_CHAIN:
        seen.add(id(current))
        links.append((current, joint))
        if current.__cause__ is not None:
            current, joint = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, joint = current.__context__, _CONTEXT
        else:
            current = None
    # Each link's joint tells how it led to the newer one printed after it.
    return "".join(_one(link) + joint for link, joint in reversed(links))


def exc_info_of(value: object) -> ExcInfo | None:
    """An exc_info triple from what a log call was given (True, an exception, a triple)."""
    if value is True:
        found = sys.exc_info()
        if found[1] is None or found[0] is None:
            return None
        return found[0], found[1], found[2]
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return type(value[1]), value[1], value[2]
    return None
