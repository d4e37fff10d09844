"""Driver errors reduced to what is safe: class, code and names; no value ever survives.

The errors are the drivers' own classes (psycopg, pymysql, sqlite3, SQLAlchemy's wrappers)
built with the messages a server sends, with values drawn by hypothesis where a server or a
trigger puts them. The real servers' errors are in tests/integration/test_error_leaks.py.
"""

from __future__ import annotations

import sqlite3
import string
from collections.abc import Callable

import psycopg.errors as pg
import pymysql.err as my
import pytest
import sqlalchemy.exc as sa_exc
from hypothesis import assume, example, given
from hypothesis import strategies as st

from connectors.base import ConnectorError, LockTimeout
from connectors.errors import describe, wrap_errors
from connectors.redact import RAISED_BY_DATABASE_CODE, scrub
from worker.tracebacks import exception_message, render_exception


class _Diag:
    """The fields of psycopg's Diagnostic that a test sets; every other one is None."""

    def __init__(self, **fields: str | None) -> None:
        self.__dict__.update(fields)

    def __getattr__(self, name: str) -> None:
        return None


def pg_error(cls: type[pg.Error], message: str, **diag: str | None) -> pg.Error:
    """A psycopg error of class `cls` whose `diag` holds `diag` (psycopg reads it from the
    server's reply, which a unit test does not have)."""
    shaped = type(cls.__name__, (cls,), {"diag": property(lambda _self: _Diag(**diag))})
    error: pg.Error = shaped(message)
    return error


def sqlite_error(cls: type[sqlite3.Error], message: str, code: int, name: str) -> sqlite3.Error:
    error = cls(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    error.sqlite_errorname = name  # type: ignore[attr-defined]
    return error


def wrapped(orig: BaseException, value: str) -> sa_exc.DBAPIError:
    """As SQLAlchemy raises it: the statement and its parameters hold the value too."""
    return sa_exc.DBAPIError.instance(
        f"DELETE FROM child WHERE email = '{value}'", {"email": value}, orig, Exception
    )


# --- what a description holds ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            pg_error(
                pg.UniqueViolation,
                'duplicate key value violates unique constraint "uq_child_email"',
                constraint_name="uq_child_email",
                table_name="child",
                schema_name="public",
            ),
            "UniqueViolation [SQLSTATE 23505]: constraint uq_child_email, table public.child",
        ),
        (
            pg_error(pg.NotNullViolation, "null value", table_name="child", column_name="name"),
            "NotNullViolation [SQLSTATE 23502]: table child, column name",
        ),
        (
            pg_error(pg.LockNotAvailable, "canceling statement due to lock timeout"),
            "LockNotAvailable [SQLSTATE 55P03]",
        ),
        (
            my.IntegrityError(
                1062, "Duplicate entry 'a@b.nl' for key 'uq_email'", sqlstate="23000"
            ),
            "IntegrityError [errno 1062, SQLSTATE 23000]: duplicate entry; key uq_email",
        ),
        (
            my.IntegrityError(
                1451,
                "Cannot delete or update a parent row: a foreign key constraint fails "
                "(`kids`.`visit`, CONSTRAINT `fk_visit_child` FOREIGN KEY (`child_id`) "
                "REFERENCES `child` (`id`))",
                sqlstate="23000",
            ),
            "IntegrityError [errno 1451, SQLSTATE 23000]: a foreign key constraint fails: the "
            "row is referenced; constraint fk_visit_child, table visit, column child_id, "
            "referenced table child",
        ),
        (
            my.OperationalError(1205, "Lock wait timeout exceeded; try restarting transaction"),
            "OperationalError [errno 1205]: lock wait timeout exceeded",
        ),
        (
            my.OperationalError(1213, "Deadlock found when trying to get lock", sqlstate="40001"),
            "OperationalError [errno 1213, SQLSTATE 40001]: deadlock",
        ),
        (
            my.DataError(1406, "Data too long for column 'email' at row 1", sqlstate="22001"),
            "DataError [errno 1406, SQLSTATE 22001]: data too long; column email",
        ),
        (
            sqlite_error(
                sqlite3.IntegrityError,
                "UNIQUE constraint failed: child.email",
                2067,
                "SQLITE_CONSTRAINT_UNIQUE",
            ),
            "IntegrityError [SQLITE_CONSTRAINT_UNIQUE]: UNIQUE constraint failed; table child, "
            "column email",
        ),
        (
            sqlite_error(
                sqlite3.IntegrityError,
                "FOREIGN KEY constraint failed",
                787,
                "SQLITE_CONSTRAINT_FOREIGNKEY",
            ),
            "IntegrityError [SQLITE_CONSTRAINT_FOREIGNKEY]: FOREIGN KEY constraint failed",
        ),
    ],
    ids=lambda value: getattr(value, "__name__", None) or type(value).__name__,
)
def test_a_description_holds_class_code_and_names(error: BaseException, expected: str) -> None:
    """Server errors become class, SQLSTATE or error number, our wording and the names of
    constraints, tables, columns and keys; wrapped by SQLAlchemy or not."""
    assert describe(error) == expected
    assert describe(wrapped(error, "x")) == expected


@pytest.mark.parametrize(
    "error",
    [
        pg_error(pg.RaiseException, "child Jan has email j@x.nl", table_name="Jan"),
        pg_error(
            pg.UniqueViolation,
            "forged",
            constraint_name="Jansen",
            context="PL/pgSQL function no_delete() line 2 at RAISE",
        ),
        pg_error(pg.CheckViolation, "x", constraint_name="Jansen", context="PL/Python function"),
        pg_error(pg.AssertFailure, "assert failed for Jan"),
        my.OperationalError(1644, "child Jan bsn 123456782", sqlstate="45000"),
        my.OperationalError(1001, "child Jan bsn 123456782", sqlstate="45001"),
        sqlite_error(
            sqlite3.IntegrityError, "child Jan bsn 123456782", 1811, "SQLITE_CONSTRAINT_TRIGGER"
        ),
    ],
    ids=lambda value: type(value).__name__,
)
def test_an_error_raised_by_code_in_the_database_shows_no_text_and_no_names(
    error: BaseException,
) -> None:
    """RAISE (PL/pgSQL, other procedural languages), SIGNAL and SQLite's RAISE(): their
    author chose text and names, so neither is shown; the code still is."""
    description = describe(error)
    assert RAISED_BY_DATABASE_CODE in description
    assert "Jan" not in description
    assert "123456782" not in description
    assert "[" in description  # SQLSTATE, errno or result code


def test_sqlite_on_delete_restrict_is_told_as_a_foreign_key_not_a_trigger() -> None:
    """SQLite fails ON DELETE RESTRICT as SQLITE_CONSTRAINT_TRIGGER with a fixed text: that
    text is shown (it holds no value); any other text of that code is not."""
    fk = sqlite_error(
        sqlite3.IntegrityError, "FOREIGN KEY constraint failed", 1811, "SQLITE_CONSTRAINT_TRIGGER"
    )
    assert describe(fk) == (
        "IntegrityError [SQLITE_CONSTRAINT_TRIGGER]: FOREIGN KEY constraint failed"
    )
    forged = sqlite_error(
        sqlite3.IntegrityError,
        "FOREIGN KEY constraint failed: Jan",
        1811,
        "SQLITE_CONSTRAINT_TRIGGER",
    )
    assert "Jan" not in describe(forged)
    assert RAISED_BY_DATABASE_CODE in describe(forged)


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (
            pg.OperationalError(
                'connection failed: connection to server at "10.0.0.9", port 1 failed: '
                "Connection refused\n\tIs the server running on that host?"
            ),
            "OperationalError: connection failed: connection to server at ?, port 1 failed: "
            "Connection refused",
        ),
        (
            my.OperationalError(
                2003, "Can't connect to MySQL server on 'db' ([Errno 111] Connection refused)"
            ),
            "OperationalError [errno 2003]: Can't connect to MySQL server on ? ([Errno 111] "
            "Connection refused)",
        ),
        (
            sqlite_error(
                sqlite3.OperationalError, "unable to open database file", 14, "SQLITE_CANTOPEN"
            ),
            "OperationalError [SQLITE_CANTOPEN]: unable to open database file",
        ),
    ],
    ids=["psycopg", "pymysql", "sqlite3"],
)
def test_an_error_of_connecting_keeps_its_first_line_without_quoted_parts(
    error: BaseException, shown: str
) -> None:
    """Refused, unknown host, no such database: the first line says what to fix; quoted
    parts go (a host name read from a URL with a raw @ holds the rest of the password)."""
    assert describe(error) == shown


def test_a_signal_forging_a_connection_error_during_a_statement_shows_no_text() -> None:
    """A SIGNAL may set MYSQL_ERRNO = 1045 in a DELETE: the text is shown only for errors of
    connecting (SQLAlchemy gives them no statement) or of the client library."""
    forged = my.OperationalError(1045, "Access denied for Jan Jansen", sqlstate="28000")
    assert "Jansen" not in describe(wrapped(forged, "x"))
    connecting = sa_exc.DBAPIError.instance(None, None, forged, Exception)
    assert "Jansen" in describe(connecting)


def test_names_that_are_not_identifiers_are_left_out() -> None:
    """A name slot holding something else than an identifier (an e-mail, a number, spaces)
    is dropped; the description still names the code."""
    error = pg_error(pg.UniqueViolation, "x", constraint_name="jan@x.nl", table_name="123456782")
    assert describe(error) == "UniqueViolation [SQLSTATE 23505]"
    dup = my.IntegrityError(1062, "Duplicate entry 'x' for key 'Jan Jansen'", sqlstate="23000")
    assert describe(dup) == "IntegrityError [errno 1062, SQLSTATE 23000]: duplicate entry"


def test_the_timeout_messages_still_name_table_timeout_and_fix() -> None:
    """wrap_errors keeps its LockTimeout wording, with the reduced description after it."""
    orig = pg_error(pg.LockNotAvailable, "canceling statement due to lock timeout")
    with pytest.raises(LockTimeout) as caught, wrap_errors("cannot delete rows of child"):
        raise wrapped(orig, "jan@x.nl")
    message = str(caught.value)
    assert message.startswith("cannot delete rows of child: lock timeout")
    assert message.endswith("(LockNotAvailable [SQLSTATE 55P03])")
    assert "jan@x.nl" not in message
    assert caught.value.__cause__ is not None


# --- no value survives (hypothesis) -----------------------------------------------------------

PERSONAL = st.one_of(
    st.emails(),
    st.from_regex(r"[1-9][0-9]{8}", fullmatch=True),  # a BSN's shape
    st.from_regex(r"[A-Z][a-z]{2,9}( (van|de|van der) )?[A-Z][a-z]{2,12}", fullmatch=True),
    st.from_regex(r"NL[0-9]{2}[A-Z]{4}[0-9]{10}", fullmatch=True),  # an IBAN's shape
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs")),
        min_size=4,
        max_size=30,
    ),
)
# A value a connection error quotes (a host, a user): no quote character of its own.
QUOTABLE = st.text(alphabet=string.ascii_letters + string.digits + "@.-_:/", min_size=4)

MESSAGES: dict[str, Callable[[str], BaseException]] = {
    "pg raise": lambda v: pg_error(
        pg.RaiseException,
        f"user {v} has email {v}\nDETAIL:  {v}\nHINT:  {v}",
        context="PL/pgSQL function f() line 2 at RAISE",
    ),
    "pg raise as 23505": lambda v: pg_error(
        pg.UniqueViolation,
        f"{v}",
        constraint_name=v,
        context="PL/pgSQL function f() line 2 at RAISE",
    ),
    "pg duplicate key": lambda v: pg_error(
        pg.UniqueViolation,
        'duplicate key value violates unique constraint "uq"\n'
        f"DETAIL:  Key (email)=({v}) already exists.",
        constraint_name="uq",
        table_name="child",
    ),
    "pg failing row": lambda v: pg_error(
        pg.CheckViolation,
        f'new row for relation "child" violates check constraint "ck"\n'
        f"DETAIL:  Failing row contains (1, {v}, {v}).",
        constraint_name="ck",
    ),
    "pg invalid input": lambda v: pg.InvalidTextRepresentation(
        f"invalid input syntax for type integer: {v}"
    ),
    "pg client-side": lambda v: pg.DataError(f"can't parse date {v}: bad"),
    "mariadb signal": lambda v: my.OperationalError(1644, f"child {v} bsn {v}", sqlstate="45000"),
    "mariadb duplicate entry": lambda v: my.IntegrityError(
        1062, f"Duplicate entry '{v}' for key 'uq_email'", sqlstate="23000"
    ),
    "mariadb forged duplicate": lambda v: my.IntegrityError(
        1062, f"Duplicate entry {v} for key {v}", sqlstate="23000"
    ),
    "mariadb incorrect value": lambda v: my.DataError(
        1366, f"Incorrect integer value: '{v}' for column `db`.`child`.`id` at row 1"
    ),
    "mariadb unknown errno": lambda v: my.OperationalError(4999, f"something about {v}"),
    "sqlite trigger": lambda v: sqlite_error(
        sqlite3.IntegrityError, f"child {v}", 1811, "SQLITE_CONSTRAINT_TRIGGER"
    ),
    "sqlite other": lambda v: sqlite_error(sqlite3.OperationalError, f"odd {v}", 1, "SQLITE_ERROR"),
}


@pytest.mark.parametrize("kind", sorted(MESSAGES))
@given(value=PERSONAL)
@example(value="jan.jansen@example.nl")
@example(value="123456782")
def test_no_value_in_a_driver_message_survives(kind: str, value: str) -> None:
    """A value anywhere in a driver's message (a trigger's text, a duplicate key, a failing
    row, a forged name slot), or in SQLAlchemy's statement and parameters, is in no
    description, no ConnectorError message and no rendered traceback."""
    value = value.strip()
    assume(len(value) >= 4)
    make = MESSAGES[kind]
    # Our own wording, names and source lines (in the traceback) are not a leak.
    assume(not any(value in text for text in _shown(make("Xq"), "Xq")))
    error = wrapped(make(value), value)
    assert value in str(error)  # the driver's text has it; nothing shown may
    for text in _shown(make(value), value):
        assert value not in text


def _shown(orig: BaseException, value: str) -> tuple[str, str, str]:
    """The description, the ConnectorError's message and its rendered traceback."""
    error = wrapped(orig, value)
    try:
        with wrap_errors("cannot delete rows of child"):
            raise error
    except ConnectorError as exc:
        return describe(error), str(exc), render_exception(exc)
    raise AssertionError("wrap_errors raised nothing")


@pytest.mark.parametrize(
    "make",
    [
        lambda v: pg.OperationalError(f'connection to server at "{v}", port 1 failed: refused'),
        lambda v: my.OperationalError(2003, f"Can't connect to MySQL server on '{v}' (111)"),
        lambda v: my.OperationalError(1045, f"Access denied for user '{v}'@'{v}'"),
    ],
    ids=["psycopg", "pymysql 2003", "pymysql 1045"],
)
@given(value=QUOTABLE)
def test_no_quoted_value_survives_in_a_connection_error(
    make: Callable[[str], BaseException], value: str
) -> None:
    """An error of connecting keeps its text but none of its quoted parts."""
    error = sa_exc.DBAPIError.instance(None, None, make(value), Exception)
    assume(value not in describe(sa_exc.DBAPIError.instance(None, None, make("Xq"), Exception)))
    assert value not in describe(error)


@given(value=PERSONAL)
def test_other_errors_lose_their_quoted_values(value: str) -> None:
    """A message of unknown origin keeps its first line, without quoted literals (repr of
    any value, as Python's own errors quote them)."""
    value = value.strip()
    assume(len(value) >= 4 and value not in "invalid literal for int() with base 10: ?")
    for error in (
        ValueError(f"invalid literal for int() with base 10: {value!r}"),
        KeyError(value),
    ):
        assert value not in scrub(str(error))
        assert value not in exception_message(error)


def test_an_error_of_an_unknown_driver_shows_its_class_only() -> None:
    """A DB-API error of a driver this code does not know is described by its class only."""

    class StrangeError(Exception):
        pass

    error = wrapped(StrangeError("child Jan Jansen"), "x")
    assert describe(error) == "StrangeError"


def _chain(value: str) -> ConnectorError:
    orig = pg.RaiseException(f"user {value}")
    try:
        with wrap_errors("cannot delete rows of child"):
            raise wrapped(orig, value) from orig  # as SQLAlchemy raises it
    except ConnectorError as exc:
        return exc
    raise AssertionError("wrap_errors raised nothing")


def test_a_rendered_chain_names_every_type_and_no_value() -> None:
    """The rendered chain shows each exception's type and the cause joints, oldest first,
    and no value."""
    value = "-".join(["jan", "jansen@example", "nl"])  # not in any source line
    text = render_exception(_chain(value))
    assert value not in text
    assert text.startswith("psycopg.errors.RaiseException: [SQLSTATE P0001]: raised by")
    assert "Error: RaiseException [SQLSTATE P0001]: raised by" in text  # SQLAlchemy's
    assert text.count("The above exception was the direct cause of the following exception") == 2
    assert text.rstrip().splitlines()[-1].startswith("connectors.base.ConnectorError: cannot")
