"""Row-condition literals the database would refuse (tester's fault E), on SQLite, PostgreSQL
and MariaDB: a whole number beyond the integer column's declared width. `validate` exits 2
naming table.column and the range (PostgreSQL and MariaDB INTEGER: 32 bits; SQLite holds any
64-bit number, so there it passes), and a run fails the pair with that message, never with an
unexpected error, changing no row of either tenant. Literals no database can take (beyond 64
bits, a NUL in a text) are refused offline: tests/unit/test_condition_literals.py.
"""

from __future__ import annotations

from pathlib import Path

from tests.integration import school
from tests.integration.own_config import validate
from tests.integration.school import PAST, both, pupil
from tests.support import run_once
from worker.state import StateStore

SEED = {"pupil": both(pupil(1, 1, grade=7, left_on=PAST), pupil(1, 2, grade=8, left_on=PAST))}
MAPPING = """\
subjects:
  pupil:
    kind: child
    table: pupil
    key: [org, id]
    columns: {name: name}
    dates: {left: left_on}
rules:
  - id: kids.pupil.left
    subject: pupil
    after: {date: left, period: 12m}
    action: anonymise
    with: {name: "null"}
    where: [{column: grade, ge: 3000000000}]
"""


def test_a_whole_number_beyond_the_integer_column_is_refused(
    school_url: str, tmp_path: Path, state: StateStore
) -> None:
    school.reseed(school_url, SEED)
    config = school.config(tmp_path, MAPPING)
    code, out = validate(tmp_path, {school.ENV_NAME: school_url})
    before = school.snapshot(school_url)
    [report] = run_once(config, {school.ENV_NAME: school_url}, state, customer="kdv-a")
    if school_url.startswith("sqlite"):
        assert code == 0, out  # SQLite's INTEGER holds 64 bits
        assert report.error is None, report.error
        assert report.changed == 0
    else:
        assert code == 2, out
        assert (
            "products/kids.yaml: rules.0.where.0 (line 17): pupil.grade: the condition on grade "
            "(ge 3000000000) is beyond the column's type " in out
        )
        assert "(whole numbers from -2147483648 to 2147483647)" in out
        assert "write a value within that range" in out
        assert report.error is not None
        assert "unexpected" not in report.error
        assert "is beyond the column's type" in report.error
    assert school.snapshot(school_url) == before
