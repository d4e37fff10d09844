"""Driver errors reduced to what is safe to log, store and raise: the one place that does it.

A database's error text is free text. A trigger's `RAISE EXCEPTION 'user % has email %'`
(PostgreSQL) or `SIGNAL … SET MESSAGE_TEXT = CONCAT(…)` (MariaDB) puts row values into it
unquoted; a duplicate-key message quotes the duplicated value; PostgreSQL's DETAIL prints the
failing row. So the text is never passed on. A description holds:

- the error's class (psycopg names it after the SQLSTATE's condition: `UniqueViolation`);
- its code: the SQLSTATE; for MariaDB/MySQL the error number too; for SQLite the result
  code's name (`SQLITE_CONSTRAINT_UNIQUE`);
- names only: constraint, table, column, schema, key. From psycopg's `diag` fields, or from
  the MariaDB/MySQL and SQLite message templates whose slots are known to hold names (a
  duplicate entry: only the key; a foreign key: constraint, tables and columns), and only
  when the name looks like an identifier (letters, digits, `_`, `$`; at most 64);
- our own wording of a few codes ("duplicate entry", "deadlock");
- for errors of connecting (refused, unknown host, authentication failed, no such database,
  connection lost) the driver's first line, as `scrub` leaves it: such a text comes from the
  network or the log-in, never from a row; its quoted parts go all the same, since a host
  name read from a URL with a raw `@` in its password holds the rest of the password.

An error raised by code in the database (PL/pgSQL `RAISE`, other procedural languages, a
MariaDB `SIGNAL`, SQLite's `RAISE()` in a trigger) shows neither its text nor its names: its
author chose both, and may have put row values there. Left: a trigger that forges a server
error number (`SIGNAL … SET MYSQL_ERRNO = 1062`) with an identifier-shaped value in the
name's slot, which cannot be told from the server's own error.

Errors that are not a driver's are reduced by `scrub`: their first line, with every quoted
literal replaced by `?` and passwords masked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy.exc as sa_exc

from connectors.masking import mask_text

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,63}\Z")
# Quoted literals: an opening quote does not follow a letter or digit, so the apostrophes of
# "can't" and "doesn't" are not taken for quotes; one inside a value ('O'Brien') is kept in
# it; an unclosed quote runs to the end of the line.
_QUOTED = re.compile(
    r"(?<![A-Za-z0-9])'(?:[^'\\\n]|\\.|'(?=[A-Za-z0-9]))*(?:'|$)"
    r'|"(?:[^"\\\n]|\\.)*(?:"|$)'
    r"|`[^`\n]*(?:`|$)"
    r"|\((?:[^()]*)\)=\((?:[^()]*)\)",
    re.MULTILINE,
)
_MAX = 300
RAISED_BY_DATABASE_CODE = (
    "raised by a trigger or function in the database; its message is not shown, as it may "
    "quote row values"
)


@dataclass(frozen=True)
class Reduced:
    """A driver error as far as it is safe to tell: class, code, wording and names.

    `code`: "SQLSTATE 23505", "errno 1062, SQLSTATE 23000" or "SQLITE_CONSTRAINT_UNIQUE".
    `what`: our wording of the code, or a connection error's first line as `scrub` leaves
    it (for an error that is not a driver's: its first line so).
    `names`: (label, name) pairs such as ("constraint", "uq_child_email").
    """

    kind: str
    code: str = ""
    what: str = ""
    names: tuple[tuple[str, str], ...] = ()

    def message(self) -> str:
        """The description without the class: "[SQLSTATE 23505]: constraint uq, table t"."""
        parts = [p for p in (self.what, ", ".join(f"{k} {v}" for k, v in self.names)) if p]
        head = f"[{self.code}]" if self.code else ""
        tail = "; ".join(parts)
        return f"{head}: {tail}" if head and tail else head or tail

    def __str__(self) -> str:
        message = self.message()
        if not message:
            return self.kind
        return f"{self.kind} {message}" if message.startswith("[") else f"{self.kind}: {message}"


def describe(exc: BaseException) -> str:
    """A description of `exc` that is safe to log, store and put into an exception message.

    For a SQLAlchemy error the driver's error it wraps is described; see the module
    docstring for what a description holds. Never raises.
    """
    return str(reduce(exc))


def reduce(exc: BaseException) -> Reduced:
    """`exc` reduced to class, code, wording and names (see the module docstring)."""
    orig = exc.orig if isinstance(exc, sa_exc.StatementError) and exc.orig is not None else exc
    # SQLAlchemy wraps an error of connecting with no statement: no row can be in its text.
    connecting = isinstance(exc, sa_exc.DBAPIError) and exc.statement is None
    family = driver_family(orig)
    try:
        if family == "postgresql":
            return _postgresql(orig)
        if family == "mysql":
            return _mysql(orig, connecting)
        if family == "sqlite":
            return _sqlite(orig)
        if isinstance(exc, sa_exc.DBAPIError):  # a driver we do not know: its class only
            return Reduced(type(orig).__name__)
        return Reduced(type(orig).__name__, what=scrub(str(orig)))
    except Exception:  # noqa: BLE001  (an odd error object must not hide the first error)
        return Reduced(type(orig).__name__)


def driver_family(exc: BaseException) -> str | None:
    """ "postgresql", "mysql" or "sqlite" when `exc` is an error of such a driver, else None."""
    for cls in type(exc).__mro__:
        module = cls.__module__.split(".")[0]
        if module in ("psycopg", "psycopg2"):
            return "postgresql"
        if module in ("pymysql", "MySQLdb", "mariadb"):
            return "mysql"
        if module == "sqlite3":
            return "sqlite"
    return None


def is_driver_error(exc: BaseException) -> bool:
    """True for SQLAlchemy's errors and the DB-API errors of the drivers we use."""
    return isinstance(exc, sa_exc.SQLAlchemyError) or driver_family(exc) is not None


def scrub(text: str) -> str:
    """The first line of `text`, every quoted literal replaced by `?`, passwords masked.

    For messages of unknown origin: a quoted value is gone, an unquoted one is not (which is
    why driver errors are never described by their text).
    """
    first = (text.strip().splitlines() or [""])[0]
    return _QUOTED.sub("?", mask_text(first))[:_MAX]


def _identifier(name: object) -> str | None:
    """`name` when it looks like an SQL identifier (optionally schema-qualified), else None."""
    if not isinstance(name, str) or not name:
        return None
    return (
        name
        if all(_IDENT.match(part) for part in name.split(".")) and name.count(".") <= 2
        else None
    )


def _named(*pairs: tuple[str, object]) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    for label, value in pairs:
        name = _identifier(value)
        if name is not None and (label, name) not in found:
            found.append((label, name))
    return tuple(found)


# --- PostgreSQL (psycopg 3, psycopg2) -----------------------------------------------------

# Condition classes whose text comes from connecting or from losing the connection.
_PG_CONNECTION = ("08", "28", "3D", "53", "57P")
_PG_USER_RAISED = ("P0",)  # raise_exception, no_data_found, too_many_rows, assert_failure


def _postgresql(orig: BaseException) -> Reduced:
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    kind = type(orig).__name__
    code = f"SQLSTATE {sqlstate}" if sqlstate else ""
    if sqlstate is None:
        # Raised by the client library (libpq, psycopg), not sent by the server: a
        # connection's text (refused, unknown host, lost) is shown, nothing else is.
        connection = kind in ("OperationalError", "InterfaceError")
        return Reduced(kind, code, scrub(str(orig))) if connection else Reduced(kind)
    diag = getattr(orig, "diag", None)
    context = str(getattr(diag, "context", None) or "")
    if str(sqlstate).startswith(_PG_USER_RAISED) or _raised_in_database(context):
        return Reduced(kind, code, RAISED_BY_DATABASE_CODE)
    if str(sqlstate).startswith(_PG_CONNECTION):  # not raised by procedural code (above)
        return Reduced(kind, code, scrub(str(orig)))
    schema = getattr(diag, "schema_name", None)
    table = getattr(diag, "table_name", None)
    if _identifier(schema) and _identifier(table):
        table = f"{schema}.{table}"
    return Reduced(
        kind,
        code,
        names=_named(
            ("constraint", getattr(diag, "constraint_name", None)),
            ("table", table),
            ("column", getattr(diag, "column_name", None)),
        ),
    )


def _raised_in_database(context: str) -> bool:
    """True when PostgreSQL's CONTEXT says the error was raised by procedural code: a
    PL/pgSQL `RAISE`, or a function of another procedural language (PL/Python, PL/Perl…)."""
    lines = context.splitlines()
    innermost = lines[0] if lines else ""
    return innermost.rstrip().endswith("at RAISE") or (
        "PL/" in context and "PL/pgSQL" not in innermost and not innermost.startswith("SQL ")
    )


# --- MariaDB / MySQL (pymysql, mysqlclient) ------------------------------------------------

# Error numbers whose text comes from connecting or from losing the connection.
_MYSQL_CONNECTION = {1040, 1044, 1045, 1049, 1129, 1130, 1251, 2002, 2003, 2005, 2006, 2013, 2055}
_MYSQL_CLIENT_ERRORS = range(2000, 3000)  # CR_*: raised by the client library, not the server
_MYSQL_SIGNAL = 1644  # ER_SIGNAL_EXCEPTION: a SIGNAL with SQLSTATE 45000 (or another class)

_DB_TABLE = r"(?:`[^`]*`\.)?`(?P<table>[^`]*)`"
_COLUMN_AT_ROW = re.compile(
    r" for column (?:(?:`[^`]*`\.)*`(?P<column>[^`]*)`|'(?P<quoted>[^']*)') at row \d+\Z"
)
_FOREIGN_KEY = re.compile(
    rf"\({_DB_TABLE}, CONSTRAINT `(?P<constraint>[^`]*)` FOREIGN KEY \((?P<columns>[^)]*)\) "
    r"REFERENCES `(?P<referenced>[^`]*)` \([^)]*\)[A-Z ]*\)\Z"
)


def _template(pattern: str, *labels: str) -> Callable[[str], tuple[tuple[str, str], ...]]:
    compiled = re.compile(pattern)

    def names(text: str) -> tuple[tuple[str, str], ...]:
        found = compiled.search(text)
        if found is None:
            return ()
        return _named(*((label, found.group(label)) for label in labels))

    return names


def _foreign_key(text: str) -> tuple[tuple[str, str], ...]:
    found = _FOREIGN_KEY.search(text)
    if found is None:
        return ()
    columns = [c.strip().strip("`") for c in found.group("columns").split(",")]
    return _named(
        ("constraint", found.group("constraint")),
        ("table", found.group("table")),
        *(("column", c) for c in columns),
        ("referenced table", found.group("referenced")),
    )


def _column_at_row(text: str) -> tuple[tuple[str, str], ...]:
    found = _COLUMN_AT_ROW.search(text)
    if found is None:
        return ()
    return _named(("column", found.group("column") or found.group("quoted")))


def _no_names(_text: str) -> tuple[tuple[str, str], ...]:
    return ()


# errno → (our wording, the names its template holds). Each pattern is anchored at the end
# of the message, after any value the server quoted, so a value cannot pose as a name.
_MYSQL_KNOWN: dict[int, tuple[str, Callable[[str], tuple[tuple[str, str], ...]]]] = {
    1062: ("duplicate entry", _template(r" for key '(?P<key>[^']*)'\Z", "key")),
    1586: ("duplicate entry", _template(r" for key '(?P<key>[^']*)'\Z", "key")),
    1451: ("a foreign key constraint fails: the row is referenced", _foreign_key),
    1452: ("a foreign key constraint fails: no referenced row", _foreign_key),
    1216: ("a foreign key constraint fails: no referenced row", _no_names),
    1217: ("a foreign key constraint fails: the row is referenced", _no_names),
    1205: ("lock wait timeout exceeded", _no_names),
    1213: ("deadlock", _no_names),
    1969: ("max_statement_time exceeded", _no_names),
    3024: ("max_execution_time exceeded", _no_names),
    1406: (
        "data too long",
        _template(r"\AData too long for column '(?P<column>[^']*)' at row \d+\Z", "column"),
    ),
    1048: (
        "column cannot be null",
        _template(r"\AColumn '(?P<column>[^']*)' cannot be null\Z", "column"),
    ),
    1364: (
        "no default value",
        _template(r"\AField '(?P<column>[^']*)' doesn't have a default value\Z", "column"),
    ),
    1366: ("incorrect value", _column_at_row),
    1292: ("incorrect value", _column_at_row),
    4025: (
        "check constraint failed",
        _template(
            rf"\ACONSTRAINT `(?P<constraint>[^`]*)` failed for {_DB_TABLE}\Z", "constraint", "table"
        ),
    ),
    3819: (
        "check constraint failed",
        _template(r"\ACheck constraint '(?P<constraint>[^']*)' is violated\.\Z", "constraint"),
    ),
    1146: (
        "no such table",
        _template(r"\ATable '(?:[^'.]*\.)?(?P<table>[^'.]*)' doesn't exist\Z", "table"),
    ),
    1054: (
        "unknown column",
        _template(r"\AUnknown column '(?P<column>[^']*)' in '[^']*'\Z", "column"),
    ),
}


def _mysql(orig: BaseException, connecting: bool) -> Reduced:
    args: tuple[object, ...] = tuple(getattr(orig, "args", ()))
    first = args[0] if args else None
    errno = first if isinstance(first, int) and not isinstance(first, bool) else None
    text = args[1] if len(args) >= 2 and isinstance(args[1], str) else ""
    sqlstate = getattr(orig, "sqlstate", None)
    kind = type(orig).__name__
    code = ", ".join(
        p
        for p in (
            f"errno {errno}" if errno is not None else "",
            f"SQLSTATE {sqlstate}" if sqlstate else "",
        )
        if p
    )
    if errno == _MYSQL_SIGNAL or str(sqlstate or "").startswith("45"):
        return Reduced(kind, code, RAISED_BY_DATABASE_CODE)
    # A connection's text is shown when it cannot come from a SIGNAL (which may set any
    # number): raised while connecting, or by the client library itself (no SQLSTATE).
    client = sqlstate is None and (errno is None or errno in _MYSQL_CLIENT_ERRORS)
    if errno in _MYSQL_CONNECTION and (connecting or client):
        return Reduced(kind, code, scrub(text or str(orig)))
    if errno is None and client and kind in ("OperationalError", "InterfaceError"):
        return Reduced(kind, code, scrub(str(orig)))
    known = _MYSQL_KNOWN.get(errno) if errno is not None else None
    if known is None:
        return Reduced(kind, code)
    wording, names = known
    return Reduced(kind, code, wording, names(text))


# --- SQLite -------------------------------------------------------------------------------

_SQLITE_CONNECTION = {14, 26}  # SQLITE_CANTOPEN, SQLITE_NOTADB
_SQLITE_TRIGGER = 19 | (7 << 8)  # SQLITE_CONSTRAINT_TRIGGER: RAISE() in a trigger
_SQLITE_FOREIGN_KEY = "FOREIGN KEY constraint failed"  # a fixed text: no value can be in it
_SQLITE_COLUMNS = re.compile(
    r"\A(?:UNIQUE|NOT NULL|PRIMARY KEY) constraint failed: (?P<columns>[A-Za-z0-9_$., ]+)\Z"
)
_SQLITE_NAMED = re.compile(
    r"\A(?:(?P<check>CHECK constraint failed)|no such (?P<what>table|column)): (?P<name>\S+)\Z"
)


def _sqlite(orig: BaseException) -> Reduced:
    kind = type(orig).__name__
    errcode = getattr(orig, "sqlite_errorcode", None)
    code = str(getattr(orig, "sqlite_errorname", None) or (errcode if errcode is not None else ""))
    text = (str(orig).strip().splitlines() or [""])[0]
    if errcode == _SQLITE_TRIGGER and text != _SQLITE_FOREIGN_KEY:
        # (ON DELETE RESTRICT fails as SQLITE_CONSTRAINT_TRIGGER with the fixed text below.)
        return Reduced(kind, code, RAISED_BY_DATABASE_CODE)
    if isinstance(errcode, int) and errcode & 0xFF in _SQLITE_CONNECTION:
        return Reduced(kind, code, scrub(text))
    columns = _SQLITE_COLUMNS.match(text)
    if columns is not None:
        pairs: list[tuple[str, object]] = []
        for qualified in columns.group("columns").split(","):
            table, _, column = qualified.strip().rpartition(".")
            pairs += [("table", table), ("column", column)]
        return Reduced(kind, code, text.split(":")[0], _named(*pairs))
    named = _SQLITE_NAMED.match(text)
    if named is not None:
        label = "constraint" if named.group("check") else named.group("what")
        wording = "check constraint failed" if named.group("check") else f"no such {label}"
        return Reduced(kind, code, wording, _named((label, named.group("name"))))
    if text in (_SQLITE_FOREIGN_KEY, "database is locked", "interrupted"):
        return Reduced(kind, code, text)
    return Reduced(kind, code)
