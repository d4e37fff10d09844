"""Related rows with an anonymised subject (issue 9, point 3) on SQLite, PostgreSQL and MariaDB:
a rule that anonymises a pupil deletes its medical records and anonymises its emergency
contacts in the same transaction, counted per table; related rows of pupils the rule does not
change (inside the period, or not meeting the subject's condition) stay, and so does every row
of the other tenant, which holds the same keys and values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from connectors.anonymise import mask_value
from connectors.base import ColumnMask, Mask
from tests.integration import school
from tests.integration.own_config import validate
from tests.integration.school import INSIDE, PAST, both, pupil
from tests.support import PEPPER
from worker.report import format_changes
from worker.state import StateStore


def mapping(contact_with: str) -> str:
    return f"""\
subjects:
  pupil:
    kind: child
    table: pupil
    key: [org, id]
    columns: {{name: name}}
    dates: {{left: left_on}}
    where: [{{column: status, equals: Left}}]
rules:
  - id: kids.pupil.left
    subject: pupil
    after: {{date: left, period: 12m}}
    action: anonymise
    with: {{name: "null"}}
    related:
      - table: medical
        references: {{org: org, pupil_id: id}}
        action: delete
        columns: {{notes: health}}
      - table: contact
        references: {{org: org, pupil_id: id}}
        action: anonymise
        columns: {{name: name, phone: phone}}
        with: {contact_with}
"""


def _rows(table: str, *values: tuple[int, int, Any]) -> list[dict[str, Any]]:
    column = "notes" if table == "medical" else "name"
    found = [{"org": 1, "id": i, "pupil_id": p, column: v} for i, p, v in values]
    if table == "contact":
        found = [r | {"phone": f"06-1234567{r['id']}" if r["id"] != 4 else None} for r in found]
    return found


# Tenant 1 (tenant 2 the same): 1 left, past: changed, with medical 1, 2 and contacts 1, 4;
# 2 left, inside the period; 3 left, past, without related rows; 4 past but still Full.
SEED = {
    "pupil": both(
        pupil(1, 1, status="Left", left_on=PAST),
        pupil(1, 2, status="Left", left_on=INSIDE),
        pupil(1, 3, status="Left", left_on=PAST),
        pupil(1, 4, status="Full", left_on=PAST),
    ),
    "medical": both(
        *_rows("medical", (1, 1, "astma"), (2, 1, "noten"), (3, 2, "gluten"), (4, 4, "lactose"))
    ),
    "contact": both(
        *_rows("contact", (1, 1, "Oma Jansen"), (2, 2, "Opa Bos"), (3, 4, "Tante"), (4, 1, "Buur"))
    ),
}


def phone_hash(value: str | None) -> Any:
    return mask_value(ColumnMask("phone", Mask.KEYED_HASH), value, PEPPER)


@pytest.mark.parametrize(
    ("contact_with", "phone"),
    [
        pytest.param('{name: "null", phone: keyed_hash}', phone_hash, id="row-by-row"),
        pytest.param('{name: "null", phone: {fixed: removed}}', lambda _: "removed", id="constant"),
    ],
)
def test_related_rows_go_with_the_anonymised_subject_rows_only(
    school_url: str, tmp_path: Path, state: StateStore, contact_with: str, phone: Any
) -> None:
    """Tenant 1's pupils 1 and 3 are anonymised; pupil 1's medical records are deleted and
    its contacts anonymised (by primary key for a keyed hash, in one statement for constant
    masks); counted per table; a second run changes nothing; then tenant 2 the same."""
    school.reseed(school_url, SEED)
    config = school.config(tmp_path, mapping(contact_with))
    code, out = validate(tmp_path, {school.ENV_NAME: school_url})
    assert code == 0, out
    before = school.snapshot(school_url)

    report = school.run(config, school_url, state, "kdv-a")
    assert report.rules[0].changed == {"pupil": 2, "medical": 2, "contact": 2}
    # The summary names what happened to each table: medical rows are deleted, not anonymised.
    assert report.rules[0].actions == {"medical": "delete"}
    summary = format_changes([report])
    assert re.search(r"kids\s+medical\s+delete\s+2", summary), summary
    assert re.search(r"kids\s+contact\s+anonymise\s+2", summary), summary
    after = school.snapshot(school_url)
    school.changed_only(before, after, "pupil", {(1, 1): {"name": None}, (1, 3): {"name": None}})
    school.changed_only(before, after, "medical", {(1, 1): None, (1, 2): None})
    masked = {
        (1, i): {"name": None, "phone": phone(before["contact"][(1, i)]["phone"])} for i in (1, 4)
    }
    school.changed_only(before, after, "contact", masked)
    school.unchanged_but(before, after, "pupil", "medical", "contact")

    assert school.run(config, school_url, state, "kdv-a").changed == 0
    assert school.snapshot(school_url) == after

    report = school.run(config, school_url, state, "kdv-b")
    assert report.rules[0].changed == {"pupil": 2, "medical": 2, "contact": 2}
    final = school.snapshot(school_url)
    school.changed_only(after, final, "pupil", {(2, 1): {"name": None}, (2, 3): {"name": None}})
    school.changed_only(after, final, "medical", {(2, 1): None, (2, 2): None})
    masked = {
        (2, i): {"name": None, "phone": phone(before["contact"][(2, i)]["phone"])} for i in (1, 4)
    }
    school.changed_only(after, final, "contact", masked)
