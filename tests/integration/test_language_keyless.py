"""A log table without a primary key (issue 9, points 4 and 7) on SQLite, PostgreSQL and
MariaDB: a delete rule clears its expired rows in bounded batches (exact duplicate rows
included), one audit event per batch; the rows inside the period and every row of the other
tenant remain. A key that no unique index proves is refused by `validate`, and so is any
action but delete on a table without a key.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.integration import school
from tests.integration.own_config import validate
from tests.integration.school import INSIDE, LONG_AGO, ON, PAST
from worker.errors import ConfigError
from worker.state import StateStore

BATCH = 3
# (pupil_id, at, message) of tenant 1; tenant 2 holds the very same rows.
EXPIRED = [
    *[(7, PAST, "login")] * 4,  # four exact duplicates
    *[(8, LONG_AGO, "logout")] * 2,
    (None, PAST, "system"),  # NULLs in the row: still named, still deleted once
    (9, LONG_AGO, "a"),
    (9, PAST, "b"),
    (10, LONG_AGO, None),
]
KEPT = [(7, INSIDE, "login"), (7, ON, "login"), (7, None, "login")]
SEED = {
    "access_log": [
        {"org": org, "pupil_id": p, "at": at, "message": m}
        for org in (1, 2)
        for p, at, m in [*EXPIRED, *KEPT]
    ]
}


def mapping(key: str = "[]", action: str = "delete") -> str:
    return f"""\
subjects:
  log:
    kind: child
    table: access_log
    key: {key}
    columns: {{message: ip}}
    dates: {{at: at}}
rules:
  - id: kids.log.expired
    subject: log
    after: {{date: at, period: 12m}}
    action: {action}
"""


def batches(state: StateStore) -> list[int]:
    """Rows of access_log each applied batch of the trail deleted, in order."""
    with state.audit_snapshot() as (_head, records):
        return [
            json.loads(r.payload)["rows"]["access_log"]
            for r in records
            if r.kind == "batch.applied"
        ]


def test_expired_rows_of_a_table_without_a_key_go_in_bounded_batches(
    school_url: str, tmp_path: Path, state: StateStore
) -> None:
    """10 expired rows, batch_size 3: four batches of 3, 3, 3 and 1 rows, each its own audit
    event; the three rows inside the period (or without a date) and all of tenant 2's rows
    remain; a second run deletes nothing."""
    school.reseed(school_url, SEED)
    config = school.config(tmp_path, mapping(), batch_size=BATCH)
    code, out = validate(tmp_path, {school.ENV_NAME: school_url})
    assert code == 0, out
    before = school.snapshot(school_url)

    report = school.run(config, school_url, state, "kdv-a")
    assert report.rules[0].changed == {"access_log": len(EXPIRED)}
    assert batches(state) == [3, 3, 3, 1]
    after = school.snapshot(school_url)
    gone = Counter((1, p, at, m) for p, at, m in EXPIRED)
    assert after["access_log"] == before["access_log"] - gone
    assert +after["access_log"] == Counter(
        [*((1, p, at, m) for p, at, m in KEPT), *((2, p, at, m) for p, at, m in EXPIRED + KEPT)]
    )
    school.unchanged_but(before, after, "access_log")

    assert school.run(config, school_url, state, "kdv-a").changed == 0
    assert batches(state) == [3, 3, 3, 1]
    assert school.snapshot(school_url) == after


def test_validate_refuses_a_key_no_unique_index_proves(school_url: str, tmp_path: Path) -> None:
    """key: [org, pupil_id] on the log names several rows at once: validate exits 2 and says
    to map a proven key or `key: []`."""
    school.config(tmp_path, mapping(key="[org, pupil_id]"))
    code, out = validate(tmp_path, {school.ENV_NAME: school_url})
    assert code == 2, out
    assert "access_log" in out and "key: []" in out, out


def test_a_table_without_a_key_can_only_be_deleted_from(tmp_path: Path) -> None:
    """Anonymising a row needs a key to name it by: the configuration is refused offline."""
    with pytest.raises(ConfigError, match=r"only a delete can clear such a table"):
        school.config(tmp_path, mapping(action='anonymise\n    with: {message: "null"}'))
