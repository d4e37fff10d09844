"""Row-condition literals no database can compare (tester's fault E), refused offline when
the files load, at the condition's path, with the fix: a whole number beyond 64 bits (SQLite's
driver overflows, PostgreSQL refuses it) and a text with a NUL character (PostgreSQL refuses
it). The live column's width is checked by `validate`: tests/integration/
test_condition_literals.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.own_config import CATALOGUE
from worker.configload import load_config

PRODUCT = """\
product: kids
database: {url_env: KIDS_DATABASE_URL}
tenancy: {column: org}
subjects:
  child:
    kind: child
    table: child
    key: [org, id]
    columns: {name: name}
    dates: {left: left_on}
    where: [SUBJECT]
rules:
  - id: kids.child.left
    subject: child
    after: {date: left, period: 12m}
    action: anonymise
    with: {name: "null"}
    where: [RULE]
"""


def _problems(tmp_path: Path, subject: str, rule: str) -> list[str]:
    (tmp_path / "products").mkdir()
    (tmp_path / "customers").mkdir()
    (tmp_path / "catalogue.yaml").write_text(CATALOGUE)
    text = PRODUCT.replace("SUBJECT", subject).replace("RULE", rule)
    (tmp_path / "products" / "kids.yaml").write_text(text)
    (tmp_path / "customers" / "kdv-a.yaml").write_text(
        "customer: kdv-a\ntimezone: Europe/Amsterdam\nproducts:\n  kids:\n    tenant: 1\n"
    )
    return [str(p) for p in load_config(tmp_path).problems]


OK = "{column: grade, ge: 3}"


@pytest.mark.parametrize(
    ("subject", "rule", "where", "words"),
    [
        pytest.param(
            OK,
            "{column: grade, ge: 99999999999999999999999}",
            "rules.0.where.0",
            "the whole number 99999999999999999999999 is beyond what any database's integer "
            "column holds (-9223372036854775808 to 9223372036854775807)",
            id="int-beyond-64-bit",
        ),
        pytest.param(
            "{column: grade, in: [1, -9223372036854775809]}",
            OK,
            "subjects.child.where.0",
            "the whole number -9223372036854775809 is beyond",
            id="int-in-list",
        ),
        pytest.param(
            OK,
            '{column: status, equals: "Le\\0ft"}',
            "rules.0.where.0",
            "the text holds a NUL character (\\0), which PostgreSQL refuses in any text",
            id="nul-in-text",
        ),
    ],
)
def test_a_literal_no_database_can_compare_is_refused(
    tmp_path: Path, subject: str, rule: str, where: str, words: str
) -> None:
    problems = _problems(tmp_path, subject, rule)
    assert len(problems) == 1, problems
    assert f"products/kids.yaml: {where}" in problems[0], problems
    assert words in problems[0], problems


def test_literals_within_64_bits_load(tmp_path: Path) -> None:
    edge = "{column: grade, in: [-9223372036854775808, 9223372036854775807]}"
    assert _problems(tmp_path, edge, '{column: status, equals: "Left"}') == []
