"""Row conditions (`where`, issue 9 point 2) on SQLite, PostgreSQL and MariaDB: equality,
membership, NULL / not NULL and comparisons with whole numbers and date-times, on a subject
and on a rule, together with the cutoff.

Both tenants hold the same pupils with the same keys and values; a run of tenant 1 changes
exactly the rows of tenant 1 that are past the cutoff and meet every condition.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.integration import school
from tests.integration.own_config import execute, validate
from tests.integration.school import INSIDE, PAST, both, pupil
from worker.state import StateStore

T = dt.datetime
# 1-4 are past the cutoff, 5 meets every condition below but is inside the period.
SEED = {
    "pupil": both(
        pupil(1, 1, status="Left", grade=7, archived_at=None, left_on=PAST),
        pupil(1, 2, status="Full", grade=8, archived_at=T(2025, 6, 1, 10), left_on=PAST),
        pupil(1, 3, status="Moved", grade=9, archived_at=None, left_on=PAST),
        pupil(1, 4, status=None, grade=None, archived_at=T(2026, 6, 1, 10), left_on=PAST),
        pupil(1, 5, status="Left", grade=8, archived_at=None, left_on=INSIDE),
        pupil(1, 6, status="Left", grade=7, archived_at=T(2025, 12, 31, 23, 59), left_on=PAST),
    )
}


def mapping(subject_where: str, rule_where: str) -> str:
    return f"""\
subjects:
  pupil:
    kind: child
    table: pupil
    key: [org, id]
    columns: {{name: name}}
    dates: {{left: left_on}}
    where: {subject_where}
rules:
  - id: kids.pupil.left
    subject: pupil
    after: {{date: left, period: 12m}}
    action: anonymise
    with: {{name: "null"}}
    where: {rule_where}
"""


CONDITIONS = [
    ("{column: status, equals: Left}", {1, 6}),
    ("{column: status, not_equals: Full}", {1, 3, 6}),  # NULL is not "not Full"
    ("{column: status, in: [Left, Moved]}", {1, 3, 6}),
    ("{column: status, not_in: [Full, Left]}", {3}),
    ("{column: archived_at, is_null: true}", {1, 3}),
    ("{column: archived_at, is_null: false}", {2, 4, 6}),
    ("{column: grade, lt: 8}", {1, 6}),
    ("{column: grade, le: 8}", {1, 2, 6}),
    ("{column: grade, gt: 8}", {3}),
    ("{column: grade, ge: 8}", {2, 3}),
    ("{column: archived_at, lt: '2026-01-01T00:00:00'}", {2, 6}),
    # With an offset: the same instant on every backend (the column holds UTC): 23:30 UTC
    # leaves out 6's 23:59, and 00:00 UTC written as 22:00-02:00 takes it in.
    ("{column: archived_at, lt: '2026-01-01T00:30:00+01:00'}", {2}),
    ("{column: archived_at, lt: '2025-12-31T22:00:00-02:00'}", {2, 6}),
]


def test_a_rule_condition_changes_exactly_the_expired_rows_that_meet_it(
    school_url: str, tmp_path: Path, state: StateStore
) -> None:
    """Each test, on rows on both sides of it (and NULL, false for all but is_null: true):
    only tenant 1's rows that are past the cutoff and meet it are anonymised. (One test per
    backend, reseeded per condition: each run is short, the set-up is not.)"""
    for n, (condition, expected) in enumerate(CONDITIONS):
        school.reseed(school_url, SEED)
        config = school.config(tmp_path / str(n), mapping("[]", f"[{condition}]"))
        before = school.snapshot(school_url)

        report = school.run(config, school_url, state, "kdv-a")
        assert report.rules[0].changed == {"pupil": len(expected)}, condition
        after = school.snapshot(school_url)
        school.changed_only(before, after, "pupil", {(1, i): {"name": None} for i in expected})
        school.unchanged_but(before, after, "pupil")


def test_subject_and_rule_conditions_all_hold(
    school_url: str, tmp_path: Path, state: StateStore
) -> None:
    """A subject's `where` and a rule's `where` hold together; validate accepts both
    against the live column types; each tenant gets its own rows changed, once."""
    school.reseed(school_url, SEED)
    config = school.config(
        tmp_path,
        mapping("[{column: status, in: [Left, Moved]}]", "[{column: grade, ge: 8}]"),
    )
    code, out = validate(tmp_path, {school.ENV_NAME: school_url})
    assert code == 0, out
    before = school.snapshot(school_url)

    report = school.run(config, school_url, state, "kdv-a")
    assert report.rules[0].changed == {"pupil": 1}
    after = school.snapshot(school_url)
    school.changed_only(before, after, "pupil", {(1, 3): {"name": None}})

    school.run(config, school_url, state, "kdv-b")
    final = school.snapshot(school_url)
    school.changed_only(after, final, "pupil", {(2, 3): {"name": None}})
    assert school.run(config, school_url, state, "kdv-a").changed == 0


def test_validate_refuses_a_condition_the_column_cannot_hold(
    school_url: str, tmp_path: Path
) -> None:
    """A value that is no value of the live column's type, or a column that is not there:
    validate exits 2 naming table.column and what to write, for each condition."""
    bad = [
        "{column: grade, ge: eight}",
        "{column: archived_at, lt: 'yesterday'}",
        "{column: status, equals: 3}",
        "{column: colour, equals: red}",
    ]
    school.config(tmp_path, mapping("[]", f"[{', '.join(bad)}]"))
    code, out = validate(tmp_path, {school.ENV_NAME: school_url})
    assert code == 2, out
    for words in (
        ("pupil.grade", "whole number"),
        ("pupil.archived_at", "date-time"),
        ("pupil.status", "text"),
        ("pupil.colour", "missing"),
    ):
        line = next((x for x in out.splitlines() if words[0] in x), "")
        assert words[1] in line, out


def test_a_date_time_written_as_text_compares_as_an_instant(
    school_url: str, tmp_path: Path, state: StateStore
) -> None:
    """Date-times stored as plain text the way applications write them on SQLite
    ('2025-12-31 23:59:00', no fractions; one with a 'T') compare as instants, as on
    PostgreSQL and MariaDB: `equals` finds the row, `lt` leaves out the equal one, `le`
    takes it (text comparison put '…23:59:00' before '…23:59:00.000000')."""
    cases = [
        ("{column: archived_at, equals: '2025-12-31T23:59:00'}", {6}),
        ("{column: archived_at, lt: '2025-12-31T23:59:00'}", {2}),
        ("{column: archived_at, le: '2025-12-31T23:59:00'}", {2, 6}),
        ("{column: archived_at, in: ['2025-12-31T23:59:00', '2025-06-01T10:00:00']}", {2, 6}),
    ]
    for n, (condition, expected) in enumerate(cases):
        school.reseed(school_url, SEED)
        execute(
            school_url,
            "UPDATE pupil SET archived_at = '2025-12-31 23:59:00' WHERE id = 6",
            "UPDATE pupil SET archived_at = '2025-06-01T10:00:00' WHERE id = 2"
            if school_url.startswith("sqlite")
            else "UPDATE pupil SET archived_at = '2025-06-01 10:00:00' WHERE id = 2",
        )
        config = school.config(tmp_path / str(n), mapping("[]", f"[{condition}]"))
        before = school.snapshot(school_url)
        report = school.run(config, school_url, state, "kdv-a")
        assert report.rules[0].changed == {"pupil": len(expected)}, condition
        after = school.snapshot(school_url)
        school.changed_only(before, after, "pupil", {(1, i): {"name": None} for i in expected})
