"""Time bases that hold something other than a clean date, on each backend where they exist.

Each value is written with the database's own SQL (zero dates with MariaDB's SQL mode
relaxed, `-infinity` on PostgreSQL, text with a `T` or a zone and numbers on SQLite) and
annotated by hand with what it really is: a date or UTC instant, or None for "unknown". A run
deletes exactly the rows whose real date is from 1900 on and before the cutoff; every other
row is unchanged. The run never crashes, its lag is that of the oldest real date, validate
counts the odd values per time basis, and the year mask reads odd values back without harm.

Cutoff: 12 months before 2026-11-28 in Europe/Amsterdam, so 2025-11-28 for a DATE and
2025-11-27 23:00 UTC for a timestamp.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.own_config import execute, validate, write_config
from tests.support import NOW, run_once
from worker.events import Outcome
from worker.periods import Period, Unit
from worker.policy import overdue_seconds
from worker.state import StateStore

D, T = dt.date, dt.datetime
ENV_NAME = "KIDS_DATABASE_URL"
CUTOFF_DATE, CUTOFF_INSTANT = D(2025, 11, 28), T(2025, 11, 27, 23, 0)  # instant: naive UTC
EARLIEST = D(1900, 1, 1)

# (SQL literal, what it really is): a date / naive UTC datetime, or None for unknown.
Case = tuple[str, Any]
DATE_CASES: dict[str, list[Case]] = {
    "sqlite": [
        ("'2025-11-27'", D(2025, 11, 27)),
        ("'2025-11-28'", D(2025, 11, 28)),
        ("'1900-01-01'", D(1900, 1, 1)),
        ("'1899-12-31'", None),
        ("''", None),
        ("'garbage'", None),
        ("'0000-00-00'", None),
        ("'2025-11-27T10:00:00'", D(2025, 11, 27)),
        ("1700000000", D(2023, 11, 14)),  # Unix seconds
        ("1764374400", D(2025, 11, 29)),  # Unix seconds: 2025-11-29 00:00 UTC
        ("2460000.5", D(2023, 2, 25)),  # a Julian day number
        ("20200131", D(2020, 1, 31)),  # YYYYMMDD, not Unix seconds (1970-08-22)
        ("'20251129'", D(2025, 11, 29)),  # YYYYMMDD text (DATE affinity stores a number)
        ("20201399", None),  # no real day: unknown, not 1970-08-23
        ("20200230", None),
        ("1700000000000", D(2023, 11, 14)),  # Unix milliseconds
        ("1764374400000", D(2025, 11, 29)),  # Unix milliseconds: 2025-11-29 00:00 UTC
        ("NULL", None),
    ],
    "postgresql": [
        ("'2025-11-27'", D(2025, 11, 27)),
        ("'2025-11-28'", D(2025, 11, 28)),
        ("'-infinity'", None),
        ("'infinity'", None),
        ("'1899-12-31'", None),
        ("'0001-01-01'", None),
        ("NULL", None),
    ],
    "mysql": [
        ("'2025-11-27'", D(2025, 11, 27)),
        ("'2025-11-28'", D(2025, 11, 28)),
        ("'0000-00-00'", None),
        ("'2024-00-10'", None),
        ("'2024-05-00'", None),
        ("'1899-12-31'", None),
        ("NULL", None),
    ],
}
NAIVE_CASES: dict[str, list[Case]] = {
    "sqlite": [
        ("'2025-11-27 22:59:59'", T(2025, 11, 27, 22, 59, 59)),
        ("'2025-11-27 23:00:00'", T(2025, 11, 27, 23, 0)),
        ("'2025-11-27T22:30:00'", T(2025, 11, 27, 22, 30)),
        ("'2025-11-27T22:30:00Z'", T(2025, 11, 27, 22, 30)),
        ("'2025-11-27 23:30:00+02:00'", T(2025, 11, 27, 21, 30)),
        ("'2025-11-27 22:30:00-02:00'", T(2025, 11, 28, 0, 30)),
        ("1764280800", T(2025, 11, 27, 22, 0)),
        ("1764286200", T(2025, 11, 27, 23, 30)),
        ("20251127", T(2025, 11, 27)),  # YYYYMMDD: midnight UTC
        ("20251128", T(2025, 11, 28)),
        ("1764280800000", T(2025, 11, 27, 22, 0)),  # Unix milliseconds
        ("1764286200000", T(2025, 11, 27, 23, 30)),
        ("''", None),
        ("'garbage'", None),
        ("'1899-12-31 10:00:00'", None),
        ("NULL", None),
    ],
    "postgresql": [
        ("'2025-11-27 22:59:59'", T(2025, 11, 27, 22, 59, 59)),
        ("'2025-11-27 23:00:00'", T(2025, 11, 27, 23, 0)),
        ("'-infinity'", None),
        ("'infinity'", None),
        ("'1800-01-01 00:00:00'", None),
        ("NULL", None),
    ],
    "mysql": [
        ("'2025-11-27 22:59:59'", T(2025, 11, 27, 22, 59, 59)),
        ("'2025-11-27 23:00:00'", T(2025, 11, 27, 23, 0)),
        ("'0000-00-00 00:00:00'", None),
        ("'2024-00-10 10:00:00'", None),
        ("'1899-12-31 10:00:00'", None),
        ("NULL", None),
    ],
}
AWARE_CASES: dict[str, list[Case]] = {  # timestamptz; MariaDB TIMESTAMP (written in UTC)
    "postgresql": [
        ("'2025-11-27 23:59:59+01'", T(2025, 11, 27, 22, 59, 59)),
        ("'2025-11-28 00:00:00+01'", T(2025, 11, 27, 23, 0)),
        ("'-infinity'", None),
        ("'infinity'", None),
        ("'1800-01-01 00:00:00+00'", None),
        ("NULL", None),
    ],
    "mysql": [
        ("'2025-11-27 22:59:59'", T(2025, 11, 27, 22, 59, 59)),
        ("'2025-11-27 23:00:00'", T(2025, 11, 27, 23, 0)),
        ("'0000-00-00 00:00:00'", None),
        ("NULL", None),
    ],
}
COLUMN_TYPES = {  # left_on, seen_at, seen_tz, birth_date
    "sqlite": ("DATE", "DATETIME", None, "DATE"),
    "postgresql": ("DATE", "TIMESTAMP", "TIMESTAMPTZ", "DATE"),
    "mysql": ("DATE", "DATETIME", "TIMESTAMP NULL", "DATE"),
}
BASIS = {"date": ("left_on", DATE_CASES), "naive": ("seen_at", NAIVE_CASES)}
BASIS["aware"] = ("seen_tz", AWARE_CASES)


def backend(url: str) -> str:
    return sa.make_url(url).get_backend_name()


def relaxed(url: str) -> list[str]:
    """Statements that let MariaDB store zero dates, and write TIMESTAMPs in UTC."""
    if backend(url) == "mysql":
        return ["SET SESSION sql_mode = ''", "SET SESSION time_zone = '+00:00'"]
    return []


def create(url: str, column: str, cases: list[Case], birth_dates: list[str] | None = None) -> None:
    """person(id, tenant, name, birth_date, left_on, seen_at[, seen_tz]) with one row per
    case in `column` (the others NULL, or birth dates from `birth_dates`)."""
    name = backend(url)
    left, seen, seen_tz, birth = COLUMN_TYPES[name]
    aware = f", seen_tz {seen_tz}" if seen_tz else ""
    statements = [
        f"CREATE TABLE person (id INTEGER PRIMARY KEY, tenant INTEGER NOT NULL, "
        f"name VARCHAR(50), birth_date {birth}, left_on {left}, seen_at {seen}{aware})",
        "CREATE INDEX person_left_on ON person (left_on)",
        "CREATE INDEX person_seen_at ON person (seen_at)",
    ]
    if seen_tz:
        statements.append("CREATE INDEX person_seen_tz ON person (seen_tz)")
    execute(url, *statements)
    inserts = []
    for i, (literal, _) in enumerate(cases, 1):
        birth_value = birth_dates[i - 1] if birth_dates else "NULL"
        inserts.append(
            f"INSERT INTO person (id, tenant, name, birth_date, {column}) "
            f"VALUES ({i}, 1, 'Kind {i}', {birth_value}, {literal})"
        )
    execute(url, *relaxed(url), *inserts)


def product(column: str, action: str = "action: delete") -> str:
    return f"""\
        product: kids
        database: {{url_env: KIDS_DATABASE_URL}}
        tenancy: {{column: tenant}}
        subjects:
          person:
            kind: child
            table: person
            key: [id]
            columns: {{name: name, birth_date: birth_date}}
            dates: {{basis: {column}}}
        rules:
          - id: kids.person.gone
            subject: person
            after: {{date: basis, period: 12m}}
            {action}
        """


CUSTOMER = {"one": "timezone: Europe/Amsterdam\nproducts:\n  kids:\n    tenant: 1\n"}


def ids(url: str) -> set[int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text("SELECT id FROM person")).scalars())
    finally:
        engine.dispose()


def expired(truth: Any) -> bool:
    if truth is None:
        return False
    if isinstance(truth, dt.datetime):
        return T(1900, 1, 1) <= truth < CUTOFF_INSTANT
    return EARLIEST <= truth < CUTOFF_DATE


def other_form(literal: str) -> bool:
    """A SQLite value that is a number, or text with a 'T' or a zone."""
    if not literal.startswith("'"):
        return literal != "NULL"
    text = literal.strip("'")
    if re.fullmatch(r"\d{8}", text):  # stored as a number (NUMERIC affinity): YYYYMMDD
        return True
    return "T" in text or text.endswith("Z") or re.search(r"[+-]\d\d:\d\d$", text) is not None


def odd_params() -> list[Any]:
    found = []
    for kind, (_, cases) in BASIS.items():
        for name in ("sqlite", "postgresql", "mysql"):
            if name not in cases:
                continue
            fixture = {"sqlite": "sqlite_url", "postgresql": "pg_url", "mysql": "mariadb_url"}
            marks = {"postgresql": [pytest.mark.postgres], "mysql": [pytest.mark.mariadb]}
            found.append(
                pytest.param(kind, fixture[name], id=f"{kind}-{name}", marks=marks.get(name, []))
            )
    return found


@pytest.mark.parametrize(("kind", "fixture"), odd_params())
def test_odd_values_are_never_treated_as_old(
    request: pytest.FixtureRequest, tmp_path: Path, state: StateStore, kind: str, fixture: str
) -> None:
    """Only rows whose real date is from 1900 on and before the cutoff are deleted; the run
    succeeds, its lag comes from the oldest real date, and validate counts the odd values."""
    url: str = request.getfixturevalue(fixture)
    column, by_backend = BASIS[kind]
    cases = by_backend[backend(url)]
    create(url, column, cases)
    config = write_config(tmp_path, product(column), CUSTOMER)
    env = {ENV_NAME: url}

    code, out = validate(tmp_path, env)
    assert code == 0, out
    unknown = sum(1 for literal, truth in cases if truth is None and literal != "NULL")
    assert f"person.{column} (subjects.person.dates.basis): {unknown} row(s) hold no date" in out
    if backend(url) == "sqlite":
        converted = sum(1 for literal, truth in cases if truth is not None and other_form(literal))
        assert f"{converted} row(s) hold a number or a text with a 'T' or a zone" in out

    [report] = run_once(config, env, state)

    assert report.outcome is Outcome.SUCCEEDED, report.error
    gone = {i for i, (_, truth) in enumerate(cases, 1) if expired(truth)}
    assert gone, "every case list has expired rows"
    assert ids(url) == set(range(1, len(cases) + 1)) - gone
    assert report.rules[0].eligible == len(gone)
    oldest = min(truth for _, truth in cases if expired(truth))
    period = Period(12, Unit.MONTHS)
    assert report.rules[0].lag_seconds == overdue_seconds(oldest, period, NOW, "Europe/Amsterdam")


# --- the year mask reads odd values back --------------------------------------------------

# (SQL literal written, the text read back after anonymising, or None for NULL)
BIRTH_CASES: dict[str, list[tuple[str, str | None]]] = {
    "sqlite": [
        ("'1990-05-17'", "1990-01-01"),
        ("'1990-05-17T10:00:00'", "1990-01-01"),
        ("''", ""),
        ("'0000-00-00'", "0000-00-00"),
        ("'9999-12-31'", "9999-12-31"),
        ("'garbage'", None),
        ("1700000000", None),
        ("NULL", None),
    ],
    "postgresql": [
        ("'1990-05-17'", "1990-01-01"),
        ("'1899-05-05'", "1899-01-01"),
        ("'-infinity'", "-infinity"),
        ("'infinity'", "infinity"),
        ("'9999-12-31'", "9999-12-31"),
        ("'0044-03-15 BC'", "0044-01-01 BC"),  # before year 1: the year and its era stay
        ("'12000-06-01'", "12000-06-01"),  # after 9999: a "never", as 9999-12-31
        ("NULL", None),
    ],
    "mysql": [
        ("'1990-05-17'", "1990-01-01"),
        ("'0000-03-15'", "0000-01-01"),  # year zero, a real month and day
        ("'0000-00-00'", "0000-00-00"),
        ("'2024-00-10'", "2024-00-10"),
        ("'9999-12-31'", "9999-12-31"),
        ("NULL", None),
    ],
}


def birth_dates(url: str) -> dict[int, Any]:
    as_text = {
        "sqlite": "birth_date",
        "postgresql": "birth_date::text",
        "mysql": "CAST(birth_date AS CHAR)",
    }[backend(url)]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(sa.text(f"SELECT id, {as_text} FROM person ORDER BY id"))
            return {i: (None if v is None else str(v)) for i, v in found}
    finally:
        engine.dispose()


def test_the_year_mask_reads_odd_values_back(
    any_db_url: str, tmp_path: Path, state: StateStore
) -> None:
    """Anonymising birth dates that hold zero dates, infinity, empty text, numbers, BC dates
    or dates after 9999 never crashes: values holding no date (or a "never") stay, BC dates
    keep their year and era, unreadable ones become NULL, and a second run finds nothing
    left to do."""
    cases = BIRTH_CASES[backend(any_db_url)]
    left = [("'2020-01-01'", D(2020, 1, 1))] * len(cases)
    create(any_db_url, "left_on", left, [literal for literal, _ in cases])
    action = 'action: anonymise\n            with: {birth_date: year, name: {fixed: "x"}}'
    config = write_config(tmp_path, product("left_on", action), CUSTOMER)
    env = {ENV_NAME: any_db_url}

    [report] = run_once(config, env, state)

    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert report.rules[0].changed == {"person": len(cases)}
    assert birth_dates(any_db_url) == {i: after for i, (_, after) in enumerate(cases, 1)}
    [again] = run_once(config, env, state)
    assert (again.rules[0].eligible, again.changed) == (0, 0)
