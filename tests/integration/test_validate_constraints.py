"""`validate` against live constraints, on SQLite, PostgreSQL and MariaDB (issue 9, points 5,
6 and 10).

Each test builds its own schema and mapping (`kids`: one shared table `child`, tenant column
`organisation_id`) and runs the real command. Refused masks exit 2 at the rule's `with`
entry, naming table.column and a mask that fits; the fitting mask then passes. A foreign key
from a table outside the mapping that refuses a delete rule's deletes exits 2 at the rule's
`action`; one that cascades is a warning. A time basis no index serves gets the `CREATE INDEX`
that would, and running that statement silences the warning.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.own_config import execute, validate, write_config

ENV = "KIDS_DATABASE_URL"
CUSTOMERS = {
    "kdv-a": "timezone: Europe/Amsterdam\nproducts:\n  kids:\n    tenant: 1\n",
}

PRODUCT = """\
product: kids
database: {url_env: KIDS_DATABASE_URL}
tenancy: {column: organisation_id}
subjects:
  child:
    kind: child
    table: child
    key: [id]
    columns: {username: name, nickname: name, code: name, born_on: birth_date}
    dates: {left: left_on}
DEPENDENTS
rules:
  - id: kids.child.left
    subject: child
    after: {date: left, period: 12m}
RULE
"""


def product(rule: str, dependents: str = "") -> str:
    """The mapping with `rule` (the rule's lines after `after`) and optional dependents."""
    return PRODUCT.replace("RULE", rule).replace("DEPENDENTS", dependents)


def anonymise(**masks: str) -> str:
    lines = "".join(f"      {column}: {mask}\n" for column, mask in masks.items())
    return f"    action: anonymise\n    with:\n{lines}"


def create(url: str, *, extra: list[sa.Table] | None = None, **columns: Any) -> sa.MetaData:
    """child(id, organisation_id, username VARCHAR(20) NOT NULL UNIQUE, nickname VARCHAR(40),
    code VARCHAR(12) NOT NULL, born_on DATE, left_on DATE indexed); `columns` replace or
    add columns; `extra` tables are created too (they are made on the returned metadata)."""
    md = sa.MetaData()
    defaults: dict[str, sa.Column[Any]] = {
        "id": sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        "organisation_id": sa.Column("organisation_id", sa.Integer, nullable=False),
        "username": sa.Column("username", sa.String(20), nullable=False, unique=True),
        "nickname": sa.Column("nickname", sa.String(40)),
        "code": sa.Column("code", sa.String(12), nullable=False),
        "born_on": sa.Column("born_on", sa.Date),
        "left_on": sa.Column("left_on", sa.Date, index=True),
    }
    defaults.update(columns)
    sa.Table("child", md, *defaults.values())
    for table in extra or []:
        table.to_metadata(md)
    engine = sa.create_engine(url)
    try:
        md.create_all(engine)
    finally:
        engine.dispose()
    return md


def check(tmp_path: Path, url: str, text: str) -> tuple[int, str]:
    write_config(tmp_path, text, CUSTOMERS)
    return validate(tmp_path, {ENV: url})


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the product mapping that holds `needle`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# --- masks against the column -------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "why"),
    [
        pytest.param('"null"', "writes NULL, which this NOT NULL column refuses", id="null"),
        pytest.param(
            '{fixed: "gone"}',
            "writes the same text in every anonymised row, which UNIQUE",
            id="fixed-on-unique",
        ),
        pytest.param(
            "keyed_hash",
            "writes 25 characters, more than the column's 20",
            id="keyed-hash-too-long",
        ),
    ],
)
def test_a_mask_that_cannot_fit_is_refused_with_one_that_fits(
    any_db_url: str, tmp_path: Path, mask: str, why: str
) -> None:
    """username VARCHAR(20) NOT NULL UNIQUE: `null`, a fixed text and a keyed hash exit 2 at
    the rule's `with` entry, naming child.username and {pseudonym: {length: 20}}; that mask
    passes."""
    create(any_db_url)
    text = product(anonymise(username=mask))
    code, out = check(tmp_path, any_db_url, text)
    assert code == 2, out
    line = line_of(text, "username: " + mask)
    assert f"products/kids.yaml: rules.0.with.username (line {line}): child.username is " in out
    assert "VARCHAR(20) NOT NULL" in out
    assert why in out
    assert "use {pseudonym: {length: 20}} instead" in out

    code, out = check(
        tmp_path, any_db_url, product(anonymise(username="{pseudonym: {length: 20}}"))
    )
    assert code == 0, out
    assert "child.username" not in out


@pytest.mark.parametrize(
    ("column", "mask", "why", "fits"),
    [
        pytest.param(
            "code",
            '{fixed: "anonymised (by retention)"}',
            "is 25 characters, more than the column's 12",
            'use {fixed: "anonymised"} instead',
            id="fixed-too-long",
        ),
        pytest.param(
            "organisation_id",
            "year",
            "needs a DATE or TIMESTAMP column (or text), not INTEGER",
            None,
            id="year-on-integer",
        ),
        pytest.param(
            "organisation_id",
            "keyed_hash",
            "writes text, which the column's type INTEGER",
            None,
            id="hash-on-integer",
        ),
        pytest.param(
            "born_on",
            '{fixed: "unknown"}',
            "is text, which the column's type DATE",
            "use year instead",
            id="fixed-on-date",
        ),
        pytest.param(
            "nickname",
            "{pseudonym: {length: 25}}",
            "writes 25 characters, more than the column's 20",
            "use {pseudonym: {length: 20}} instead",
            id="pseudonym-too-long",
        ),
    ],
)
def test_every_mask_is_checked_against_the_column_type_and_width(
    any_db_url: str, tmp_path: Path, column: str, mask: str, why: str, fits: str | None
) -> None:
    """Masks that do not fit a column's type or width exit 2 naming the column and why."""
    nickname = sa.Column("nickname", sa.String(20))
    code_column = sa.Column("code", sa.String(12), nullable=column != "code" or mask == "year")
    create(any_db_url, nickname=nickname, code=code_column)
    text = product(anonymise(**{column: mask}))
    text = (
        text.replace("columns: {", "columns: {organisation_id: name, ")
        if column == "organisation_id"
        else text
    )
    code, out = check(tmp_path, any_db_url, text)
    assert code == 2, out
    assert f"rules.0.with.{column} (line" in out
    assert f"child.{column} is " in out
    assert why in out
    if fits is not None:
        assert fits in out


def test_year_on_a_text_column_is_a_warning(any_db_url: str, tmp_path: Path) -> None:
    """`year` on text keeps the year of a YYYY-MM-DD text and turns other text into NULL:
    a warning, which on a NOT NULL column adds that such a row fails its batch."""
    create(any_db_url)
    code, out = check(tmp_path, any_db_url, product(anonymise(nickname="year", code="year")))
    assert code == 0, out
    assert (
        "warning: kids: child.nickname: year on a text column (VARCHAR(40)) keeps the year of "
        "a YYYY-MM-DD text and turns any other text into NULL (rules.0 (kids.child.left)"
        ".with.nickname) (kids (shared))"
    ) in out
    assert (
        "child.code: year on a text column (VARCHAR(12)) keeps the year of a YYYY-MM-DD text "
        "and turns any other text into NULL, which this NOT NULL column refuses"
    ) in out


def test_a_composite_unique_key_refuses_a_fixed_text_unless_its_other_columns_differ(
    any_db_url: str, tmp_path: Path
) -> None:
    """UNIQUE (organisation_id, nickname): a fixed nickname gives a tenant's anonymised rows
    the same pair (refused); UNIQUE (id, nickname), whose id is the primary key, keeps them
    apart (accepted)."""
    create(any_db_url, extra=[], nickname=sa.Column("nickname", sa.String(40)))
    execute(
        any_db_url, "CREATE UNIQUE INDEX ux_child_tenant_nick ON child (organisation_id, nickname)"
    )
    text = product(anonymise(nickname='{fixed: "gone"}'))
    code, out = check(tmp_path, any_db_url, text)
    assert code == 2, out
    assert (
        "child.nickname is VARCHAR(40), UNIQUE ux_child_tenant_nick (organisation_id, nickname)"
        in out
    )
    assert (
        "allows once per organisation_id, and organisation_id does not keep the rows apart" in out
    )
    assert "use keyed_hash instead" in out

    execute(
        any_db_url,
        "DROP INDEX ux_child_tenant_nick" + (" ON child" if "mysql" in any_db_url else ""),
    )
    execute(any_db_url, "CREATE UNIQUE INDEX ux_child_id_nick ON child (id, nickname)")
    code, out = check(tmp_path, any_db_url, text)
    assert code == 0, out


def test_a_null_in_another_column_of_the_key_keeps_rows_apart(
    any_db_url: str, tmp_path: Path
) -> None:
    """UNIQUE (nickname, born_on) with nickname fixed and born_on set to NULL: rows with a
    NULL in a unique key never clash, so validate accepts it; with born_on -> year it refuses."""
    create(any_db_url)
    execute(any_db_url, "CREATE UNIQUE INDEX ux_nick_born ON child (nickname, born_on)")
    code, out = check(
        tmp_path, any_db_url, product(anonymise(nickname='{fixed: "gone"}', born_on='"null"'))
    )
    assert code == 0, out
    code, out = check(
        tmp_path, any_db_url, product(anonymise(nickname='{fixed: "gone"}', born_on="year"))
    )
    assert code == 2, out
    assert "child.nickname is VARCHAR(40), UNIQUE ux_nick_born (nickname, born_on)" in out


def test_a_foreign_key_column_takes_null_only(any_db_url: str, tmp_path: Path) -> None:
    """child.parent_code references parent.code: a pseudonym would point at no parent, so it is
    refused with `"null"` as the fitting mask."""
    parent = sa.Table("parent", sa.MetaData(), sa.Column("code", sa.String(40), primary_key=True))
    create(
        any_db_url,
        extra=[parent],
        nickname=sa.Column("nickname", sa.String(40), sa.ForeignKey("parent.code")),
    )
    code, out = check(tmp_path, any_db_url, product(anonymise(nickname="keyed_hash")))
    assert code == 2, out
    assert (
        "child.nickname is VARCHAR(40), REFERENCES parent: keyed_hash would write a value no "
        "parent row has" in out
    )
    assert 'use "null" instead' in out


# --- foreign keys into deleted rows ---------------------------------------------------------


def referencing(name: str, ondelete: str | None, *, nullable: bool = False) -> sa.Table:
    """A table `name`(id, child_id → child.id ON DELETE `ondelete`)."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column(
            "child_id", sa.Integer, sa.ForeignKey("child.id", ondelete=ondelete), nullable=nullable
        ),
    )


DELETE = "    action: delete\n"


@pytest.mark.parametrize("ondelete", ["RESTRICT", None], ids=["restrict", "default-no-action"])
def test_a_refusing_foreign_key_from_an_unmapped_table_is_refused(
    any_db_url: str, tmp_path: Path, ondelete: str | None
) -> None:
    """invoice.child_id → child.id (RESTRICT, or the default NO ACTION) and invoice is not in
    the mapping: a delete rule exits 2 at its `action` with the fix; mapping invoice as a
    dependent passes; an anonymise rule is not concerned."""
    create(any_db_url, extra=[referencing("invoice", ondelete)])
    text = product(DELETE)
    code, out = check(tmp_path, any_db_url, text)
    assert code == 2, out
    assert f"products/kids.yaml: rules.0.action (line {line_of(text, 'action: delete')}): " in out
    assert "deleting child rows is refused by the foreign key " in out
    assert "invoice(child_id) → child(id) ON DELETE" in out
    expected = "RESTRICT" if ondelete or "mysql" in any_db_url else "NO ACTION"
    assert f"ON DELETE {expected}" in out
    assert "invoice is not in the mapping" in out
    assert (
        "map invoice as a dependent of child ({table: invoice, references: {child_id: id}})" in out
    )
    assert "or anonymise instead of deleting" in out

    dependents = "    dependents:\n      - {table: invoice, references: {child_id: id}}\n"
    code, out = check(tmp_path, any_db_url, product(DELETE, dependents))
    assert code == 0, out

    code, out = check(tmp_path, any_db_url, product(anonymise(nickname='"null"')))
    assert code == 0, out


def test_an_unlink_rule_is_refused_even_with_the_table_as_a_dependent(
    any_db_url: str, tmp_path: Path
) -> None:
    """Unlink removes the subject's rows only: a RESTRICT reference from a dependent still
    refuses it, and the fix says to delete instead."""
    create(any_db_url, extra=[referencing("invoice", "RESTRICT")])
    dependents = "    dependents:\n      - {table: invoice, references: {child_id: id}}\n"
    code, out = check(tmp_path, any_db_url, product("    action: unlink\n", dependents))
    assert code == 2, out
    assert "invoice is mapped, but this rule does not delete it with child" in out
    assert "unlink removes child rows only: use `action: delete`" in out


@pytest.mark.parametrize(
    ("ondelete", "effect"),
    [
        ("CASCADE", "also deletes the note rows that reference them"),
        ("SET NULL", "also sets note.child_id to NULL"),
    ],
)
def test_a_cascading_foreign_key_from_an_unmapped_table_is_a_warning(
    any_db_url: str, tmp_path: Path, ondelete: str, effect: str
) -> None:
    """note.child_id → child.id ON DELETE CASCADE / SET NULL, note not mapped: validate passes
    with a warning that names the foreign key and says the run counts those rows."""
    create(any_db_url, extra=[referencing("note", ondelete, nullable=ondelete == "SET NULL")])
    code, out = check(tmp_path, any_db_url, product(DELETE))
    assert code == 0, out
    assert f"warning: kids: deleting child rows {effect}" in out
    assert f"note(child_id) → child(id) ON DELETE {ondelete}" in out
    assert (
        "note is not in the mapping: the run counts those rows in the audit "
        "(rules.0 (kids.child.left))" in out
    )


# --- index advice -----------------------------------------------------------------------------


def advice(out: str) -> str | None:
    found = re.search(r"create one: (CREATE INDEX .*?;)", out)
    return found[1] if found else None


@pytest.mark.parametrize(
    ("existing", "advised"),
    [
        pytest.param(None, True, id="none"),
        pytest.param("(organisation_id)", True, id="tenant-only"),
        pytest.param("(organisation_id, id)", True, id="tenant-then-key"),
        pytest.param("(left_on)", False, id="basis"),
        pytest.param("(left_on, organisation_id)", False, id="basis-first"),
        pytest.param("(organisation_id, left_on)", False, id="tenant-then-basis"),
        pytest.param("(organisation_id, left_on, id)", False, id="tenant-basis-key"),
    ],
)
def test_the_index_warning_reads_composite_indexes_and_advises_the_missing_one(
    any_db_url: str, tmp_path: Path, existing: str | None, advised: bool
) -> None:
    """Only an index led by the time basis, or by the tenant column then the time basis,
    serves the selection; otherwise the warning carries a CREATE INDEX on (organisation_id,
    left_on), and running it on the database silences the warning."""
    create(any_db_url, left_on=sa.Column("left_on", sa.Date))
    if existing:
        execute(any_db_url, f"CREATE INDEX ix_existing ON child {existing}")
    text = product(anonymise(nickname='"null"'))
    code, out = check(tmp_path, any_db_url, text)
    assert code == 0, out
    statement = advice(out)
    if not advised:
        assert statement is None, out
        assert "child.left_on: no index" not in out
        return
    assert statement is not None, out
    assert "child.left_on: no index leads with (organisation_id, left_on)" in out
    quote = r'[`"]?'
    name = rf"{quote}ix_child_organisation_id_left_on{quote}"
    columns = rf"\({quote}organisation_id{quote}, {quote}left_on{quote}\)"
    assert re.fullmatch(rf"CREATE INDEX {name} ON {quote}child{quote} {columns};", statement)
    if existing and existing.startswith("(organisation_id"):
        assert "ix_existing leads with the tenant column only" in out
    execute(any_db_url, statement.rstrip(";"))
    code, out = check(tmp_path, any_db_url, text)
    assert code == 0, out
    assert advice(out) is None, out


@pytest.mark.parametrize("ondelete", ["SET NULL", "SET DEFAULT"])
@pytest.mark.parametrize(
    "url_fixture",
    [  # InnoDB refuses such a key in CREATE TABLE: on MariaDB it cannot exist
        pytest.param("sqlite_url", id="sqlite"),
        pytest.param("pg_url", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def test_a_set_null_key_on_a_not_null_column_is_refused_like_restrict(
    request: pytest.FixtureRequest, url_fixture: str, tmp_path: Path, ondelete: str
) -> None:
    """note.child_id NOT NULL → child.id ON DELETE SET NULL (or SET DEFAULT, no DEFAULT): the
    database refuses every delete, so a delete rule exits 2 at its `action` naming
    note.child_id and the fix; mapping note as a dependent passes."""
    any_db_url = request.getfixturevalue(url_fixture)
    create(any_db_url, extra=[referencing("note", ondelete)])
    text = product(DELETE)
    code, out = check(tmp_path, any_db_url, text)
    assert code == 2, out
    assert f"products/kids.yaml: rules.0.action (line {line_of(text, 'action: delete')}): " in out
    assert f"note(child_id) → child(id) ON DELETE {ondelete}" in out
    assert "note.child_id to" in out
    assert "which this NOT NULL column refuses" in out
    assert "map note as a dependent of child ({table: note, references: {child_id: id}})" in out
    assert "or make note.child_id nullable" in out

    dependents = "    dependents:\n      - {table: note, references: {child_id: id}}\n"
    code, out = check(tmp_path, any_db_url, product(DELETE, dependents))
    assert code == 0, out
