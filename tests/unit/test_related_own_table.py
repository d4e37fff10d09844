"""`related:` names another table than the subject's (tester's fault C): refused offline,
when the files load, at the entry's `table`, with the fix."""

from __future__ import annotations

from pathlib import Path

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
    columns: {name: name, nick: name}
    dates: {left: left_on}
rules:
  - id: kids.child.left
    subject: child
    after: {date: left, period: 12m}
    action: anonymise
    with: {name: "null"}
    related:
      - table: TABLE
        references: {org: org, parent_id: id}
        action: anonymise
        columns: {nick: name}
        with: {nick: "null"}
"""


def _problems(tmp_path: Path, table: str) -> list[str]:
    (tmp_path / "products").mkdir()
    (tmp_path / "customers").mkdir()
    (tmp_path / "catalogue.yaml").write_text(CATALOGUE)
    (tmp_path / "products" / "kids.yaml").write_text(PRODUCT.replace("TABLE", table))
    (tmp_path / "customers" / "kdv-a.yaml").write_text(
        "customer: kdv-a\ntimezone: Europe/Amsterdam\nproducts:\n  kids:\n    tenant: 1\n"
    )
    return [str(p) for p in load_config(tmp_path).problems]


def test_related_rows_of_the_subjects_own_table_are_refused(tmp_path: Path) -> None:
    """`related: [{table: child}]` on a child rule: one problem at rules.0.related.0.table
    naming the subject's table and the fix; another table loads without problems."""
    [problem] = _problems(tmp_path, "child")
    assert "products/kids.yaml: rules.0.related.0.table (line 18)" in problem, problem
    assert "related rows live in another table than the subject's own (child)" in problem
    assert "the rule's `with` anonymises the subject's columns" in problem


def test_related_rows_of_another_table_load(tmp_path: Path) -> None:
    assert _problems(tmp_path, "contact") == []
