"""Time bases beyond the subject's own column (issue 9, points 1 and 2), on SQLite, PostgreSQL
and MariaDB: the latest end date over related rows with "all ended" semantics and both
settings of the no-related-rows default (`if_none`), the earliest value over related rows, and
the first non-NULL of several columns (`first_of`).

Both tenants hold pupils with the same keys; tenant 2's related rows are chosen so that a
time basis reading another tenant's rows would change a tenant 1 pupil it must keep, or keep
one it must change. Each test runs tenant 1, then tenant 2, and compares every row by key.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import school
from tests.integration.own_config import validate
from tests.integration.school import INSIDE, LONG_AGO, ON, PAST, pupil
from tests.support import run_once
from worker.state import StateStore

ANONYMISED = {"name": None}


def placement(org: int, i: int, pupil_id: int, started: object, ended: object) -> dict[str, object]:
    return {"org": org, "id": i, "pupil_id": pupil_id, "started_on": started, "ended_on": ended}


# Tenant 1: 1 three placements, one open; 2 all ended, the latest one day inside the period;
# 3 all ended, the latest one day past it; 4 no placements, its own left_on past; 5 none,
# left_on inside; 6 all ended, the latest on the cutoff day. Every pupil's own left_on but
# 5's is past: a basis that read it instead would change them all.
# Tenant 2, same keys: 1 all ended long ago; 2 all ended past; 3 one open; 4 all ended past;
# 5 none, left_on past; 6 as tenant 1's.
def _placements() -> list[dict[str, object]]:
    rows = []
    n = 0
    for org, plan in (
        (1, {1: [PAST, LONG_AGO, None], 2: [LONG_AGO, INSIDE, PAST], 3: [LONG_AGO, PAST, PAST]}),
        (1, {6: [LONG_AGO, ON, PAST]}),
        (2, {1: [LONG_AGO, LONG_AGO, LONG_AGO], 2: [PAST, LONG_AGO, PAST]}),
        (2, {3: [LONG_AGO, None, PAST], 4: [PAST, PAST, LONG_AGO], 6: [LONG_AGO, ON, PAST]}),
    ):
        for pupil_id, ends in plan.items():
            for end in ends:
                n += 1
                rows.append(placement(org, n, pupil_id, LONG_AGO, end))
    return rows


SEED = {
    "pupil": [
        *(pupil(1, i, left_on=PAST) for i in (1, 2, 3, 4, 6)),
        pupil(1, 5, left_on=INSIDE),
        *(pupil(2, i, left_on=PAST) for i in range(1, 7)),
    ],
    "placement": _placements(),
}


def latest_mapping(if_none: str | None) -> str:
    fallback = f"\n        if_none: {if_none}" if if_none is not None else ""
    return f"""\
subjects:
  pupil:
    kind: child
    table: pupil
    key: [org, id]
    columns: {{name: name}}
    dates:
      left_on: left_on
      placed_until:
        latest: ended_on
        from: {{table: placement, references: {{org: org, pupil_id: id}}}}{fallback}
rules:
  - id: kids.pupil.left
    subject: pupil
    after: {{date: placed_until, period: 12m}}
    action: anonymise
    with: {{name: "null"}}
"""


@pytest.mark.parametrize(
    ("if_none", "first", "second"),
    [
        pytest.param(None, {3}, {1, 2, 4}, id="default-keep"),
        pytest.param("left_on", {3, 4}, {1, 2, 4, 5}, id="if_none-left_on"),
    ],
)
def test_latest_end_over_related_rows_with_all_ended_semantics(
    school_url: str,
    tmp_path: Path,
    state: StateStore,
    if_none: str | None,
    first: set[int],
    second: set[int],
) -> None:
    """A child with three placements, one open: kept. All ended, the latest one day inside
    the period: kept; on the cutoff day: kept; one day past: anonymised. No placements: kept
    by default (`if_none` unset is `keep`), or judged by the pupil's own left_on when
    `if_none: left_on`. Only the tenant's own placements count."""
    school.reseed(school_url, SEED)
    config = school.config(tmp_path, latest_mapping(if_none))
    code, out = validate(tmp_path, {school.ENV_NAME: school_url})
    assert code == 0, out
    before = school.snapshot(school_url)

    report = school.run(config, school_url, state, "kdv-a")
    assert report.rules[0].cutoff == school.CUTOFF
    assert report.rules[0].changed == {"pupil": len(first)}
    after = school.snapshot(school_url)
    school.changed_only(before, after, "pupil", {(1, i): ANONYMISED for i in first})
    school.unchanged_but(before, after, "pupil")

    report = school.run(config, school_url, state, "kdv-b")
    assert report.rules[0].changed == {"pupil": len(second)}
    final = school.snapshot(school_url)
    school.changed_only(after, final, "pupil", {(2, i): ANONYMISED for i in second})
    school.unchanged_but(before, final, "pupil")


EARLIEST = """\
subjects:
  pupil:
    kind: child
    table: pupil
    key: [org, id]
    columns: {name: name}
    dates:
      first_placed:
        earliest: started_on
        from: {table: placement, references: {org: org, pupil_id: id}}
rules:
  - id: kids.pupil.first-placed
    subject: pupil
    after: {date: first_placed, period: 12m}
    action: anonymise
    with: {name: "null"}
"""


def test_earliest_value_over_related_rows(
    school_url: str, tmp_path: Path, state: StateStore
) -> None:
    """The earliest start of a pupil's placements: NULL starts are skipped, one start past
    the cutoff is enough, a pupil whose starts are all inside the period or who has no
    placement is kept. Tenant 2's earlier starts for the same keys never count for 1."""
    rows = [
        placement(1, 1, 1, INSIDE, None),
        placement(1, 2, 1, PAST, None),  # 1: earliest past → changed
        placement(1, 3, 2, INSIDE, None),
        placement(1, 4, 2, ON, None),  # 2: earliest on the cutoff → kept
        placement(1, 5, 3, None, None),
        placement(1, 6, 3, PAST, INSIDE),  # 3: NULL skipped, past → changed
        placement(1, 7, 4, None, None),  # 4: no start at all → kept
        placement(2, 1, 2, LONG_AGO, None),  # tenant 2's pupil 2 (and 4, 5): past
        placement(2, 2, 4, LONG_AGO, None),
        placement(2, 3, 5, PAST, None),
    ]
    school.reseed(
        school_url, {"pupil": [pupil(o, i) for o in (1, 2) for i in range(1, 6)], "placement": rows}
    )
    config = school.config(tmp_path, EARLIEST)
    before = school.snapshot(school_url)

    report = school.run(config, school_url, state, "kdv-a")
    assert report.rules[0].changed == {"pupil": 2}
    after = school.snapshot(school_url)
    school.changed_only(before, after, "pupil", {(1, 1): ANONYMISED, (1, 3): ANONYMISED})
    school.unchanged_but(before, after, "pupil")

    school.run(config, school_url, state, "kdv-b")
    final = school.snapshot(school_url)
    school.changed_only(after, final, "pupil", {(2, i): ANONYMISED for i in (2, 4, 5)})


FIRST_OF = """\
subjects:
  pupil:
    kind: child
    table: pupil
    key: [org, id]
    columns: {name: name}
    dates:
      ended: {first_of: [contract_end, last_activity]}
rules:
  - id: kids.pupil.ended
    subject: pupil
    after: {date: ended, period: 12m}
    action: delete
"""


def test_first_of_takes_the_first_column_that_is_not_null(
    school_url: str, tmp_path: Path, state: StateStore
) -> None:
    """The contract end, or else the last activity: a contract end past the cutoff deletes
    the pupil even with recent activity; one inside the period keeps it even with old
    activity; without a contract end the last activity decides; neither: kept. Tenant 2
    holds the same keys with the columns swapped, and is judged on its own rows."""
    cases = [  # (id, contract_end, last_activity)
        (1, PAST, INSIDE),  # changed
        (2, INSIDE, PAST),
        (3, None, PAST),  # changed
        (4, None, INSIDE),
        (5, None, None),
        (6, ON, LONG_AGO),
        (7, LONG_AGO, None),  # changed
    ]
    school.reseed(
        school_url,
        {
            "pupil": [
                *(pupil(1, i, contract_end=c, last_activity=a) for i, c, a in cases),
                *(pupil(2, i, contract_end=a, last_activity=c) for i, c, a in cases),
            ]
        },
    )
    config = school.config(tmp_path, FIRST_OF)
    code, out = validate(tmp_path, {school.ENV_NAME: school_url})
    assert code == 0, out
    before = school.snapshot(school_url)

    report = school.run(config, school_url, state, "kdv-a")
    assert report.rules[0].changed == {"pupil": 3}
    after = school.snapshot(school_url)
    school.changed_only(before, after, "pupil", {(1, 1): None, (1, 3): None, (1, 7): None})
    school.unchanged_but(before, after, "pupil")

    school.run(config, school_url, state, "kdv-b")
    final = school.snapshot(school_url)
    # Swapped: 2 (PAST, INSIDE), 6 (LONG_AGO, ON), 3 (PAST, None), 7 (None, LONG_AGO).
    school.changed_only(after, final, "pupil", {(2, i): None for i in (2, 3, 6, 7)})


RELATED_AFTER_DELETE = """\
subjects:
  placement:
    kind: child
    table: placement
    key: [org, id]
    columns: {}
    dates: {ended: ended_on}
  pupil:
    kind: child
    table: pupil
    key: [org, id]
    columns: {name: name}
    dates:
      left_on: left_on
      placed_until:
        latest: ended_on
        from: {table: placement, references: {org: org, pupil_id: id}}
        if_none: left_on
rules:
  - id: kids.placement.ended
    subject: placement
    after: {date: ended, period: 12m}
    action: delete
  - id: kids.pupil.left
    subject: pupil
    after: {date: placed_until, period: 12m}
    action: anonymise
    with: {name: "null"}
"""


def test_a_plan_reads_related_rows_as_the_run_leaves_them(
    school_url: str, tmp_path: Path, state: StateStore
) -> None:
    """An earlier rule deletes placements that a later rule's time basis reads: the run
    judges each pupil on the placements left, and the plan counts the same (issue 9, point
    9). Tenant 1: pupil 1's placements all go, his own left_on is inside (kept, though the
    latest placement was past); 2 keeps an open placement (kept: a NULL end the earlier
    rule cannot judge stays); 3's placements all go, left_on past (changed); 4 keeps one
    ended inside the period (kept). Tenant 2's same keys are all past."""
    rows = [
        placement(1, 1, 1, LONG_AGO, PAST),
        placement(1, 2, 1, LONG_AGO, PAST),
        placement(1, 3, 2, LONG_AGO, PAST),
        placement(1, 4, 2, LONG_AGO, None),
        placement(1, 5, 3, LONG_AGO, PAST),
        placement(1, 6, 4, LONG_AGO, INSIDE),
        placement(1, 7, 4, LONG_AGO, PAST),
        *(placement(2, i, i, LONG_AGO, PAST) for i in range(1, 5)),
    ]
    pupils = [pupil(1, 1, left_on=INSIDE), *(pupil(1, i, left_on=PAST) for i in (2, 3, 4))]
    pupils += [pupil(2, i, left_on=PAST) for i in range(1, 5)]
    school.reseed(school_url, {"pupil": pupils, "placement": rows})
    config = school.config(tmp_path, RELATED_AFTER_DELETE)
    before = school.snapshot(school_url)

    [plan] = run_once(config, {school.ENV_NAME: school_url}, state, customer="kdv-a", dry_run=True)
    assert school.snapshot(school_url) == before
    report = school.run(config, school_url, state, "kdv-a")
    assert [(p.rule, p.changed) for p in report.rules] == [
        ("kids.placement.ended", {"placement": 5}),
        ("kids.pupil.left", {"pupil": 1}),
    ]
    assert [(p.rule, p.would_change) for p in plan.rules] == [
        (p.rule, p.changed) for p in report.rules
    ]
    after = school.snapshot(school_url)
    school.changed_only(before, after, "pupil", {(1, 3): ANONYMISED})
    gone = {(1, i) for i in (1, 2, 3, 5, 7)}
    assert set(before["placement"]) - set(after["placement"]) == gone
    school.unchanged_but(before, after, "pupil", "placement")


BASIS_FROM_A_DEPENDENT = """\
subjects:
  pupil:
    kind: child
    table: pupil
    key: [org, id]
    columns: {name: name}
    dates:
      placed_until:
        latest: ended_on
        from: {table: placement, references: {org: org, pupil_id: id}}
    dependents:
      - {table: placement, references: {org: org, pupil_id: id}}
rules:
  - id: kids.pupil.gone
    subject: pupil
    after: {date: placed_until, period: 12m}
    action: delete
"""


def test_a_delete_whose_basis_reads_its_own_dependents_deletes_them_all(
    school_url: str, tmp_path: Path, state: StateStore
) -> None:
    """The time basis is read from placements that the delete removes first (they are the
    pupil's dependents): the batch deletes the rows it locked as expired, it does not judge
    them again once their placements are gone (which had left them all in place, reporting 0
    changed every night). Pupil 1: all placements past → deleted with them; 2: one inside →
    kept with its placements. Tenant 2's same keys stay. Plan equals run."""
    rows = [
        placement(1, 1, 1, LONG_AGO, PAST),
        placement(1, 2, 1, LONG_AGO, LONG_AGO),
        placement(1, 3, 2, LONG_AGO, INSIDE),
        *(placement(2, i, 1, LONG_AGO, PAST) for i in (1, 2)),
    ]
    pupils = [pupil(o, i, left_on=PAST) for o in (1, 2) for i in (1, 2)]
    school.reseed(school_url, {"pupil": pupils, "placement": rows})
    config = school.config(tmp_path, BASIS_FROM_A_DEPENDENT)
    before = school.snapshot(school_url)

    [plan] = run_once(config, {school.ENV_NAME: school_url}, state, customer="kdv-a", dry_run=True)
    report = school.run(config, school_url, state, "kdv-a")

    assert report.rules[0].changed == {"pupil": 1, "placement": 2}
    assert plan.rules[0].would_change == report.rules[0].changed
    after = school.snapshot(school_url)
    assert set(before["pupil"]) - set(after["pupil"]) == {(1, 1)}
    assert set(before["placement"]) - set(after["placement"]) == {(1, 1), (1, 2)}
    school.unchanged_but(before, after, "pupil", "placement")
    assert school.run(config, school_url, state, "kdv-a").changed == 0
