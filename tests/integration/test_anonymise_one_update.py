"""An anonymise batch writes its rows in one UPDATE, not one per row (issue 11), on SQLite,
PostgreSQL and MariaDB: UPDATE statements are counted on the connector's engine (an
executemany counts once per row), and every row of the batch then holds exactly
`mask_value` of its old values, by key, while the rows of another tenant that share the keys
(a composite key of the tenant, a number and a text) and the tenant's rows that are not
expired keep theirs. Related rows masked per row (a keyed hash) are written in one more UPDATE.

On MariaDB a batch takes one UPDATE per set of columns its rows change
(`connectors.sqlmaskjson.mariadb_rows` says why); on PostgreSQL and SQLite one UPDATE whatever
they change. On MariaDB the text keys are latin1_german2_ci, so they must be compared in the
column's collation, not the connection's (see `note_id`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.anonymise import mask_value
from connectors.base import Change, ColumnMask, Mask, RelatedRows, Table, Target
from connectors.sql import SqlConnector
from tests.support import PEPPER

OLD, RECENT = dt.date(2020, 3, 1), dt.date(2026, 11, 1)
CUTOFF = dt.date(2025, 1, 1)
MASKS = (
    ColumnMask("email", Mask.KEYED_HASH),
    ColumnMask("phone", Mask.NULL),
    ColumnMask("nickname", Mask.FIXED, text="weg"),
    ColumnMask("birth_date", Mask.YEAR),
)
NOTE_MASK = ColumnMask("body", Mask.KEYED_HASH)
ROWS = 40  # expired rows of tenant 1, in one batch
_UPDATE = re.compile(r"^\s*(WITH\b.*?\)\s*)?UPDATE\s", re.IGNORECASE | re.DOTALL)


def backend(url: str) -> str:
    return sa.make_url(url).get_backend_name()


def create(url: str) -> tuple[sa.Table, sa.Table]:
    """member(tenant, id, code, email, phone, nickname, birth_date, left_on), primary key
    (tenant, id, code), and note(id, tenant, member_id, member_code, body) pointing at it."""
    md = sa.MetaData()
    code_type = sa.String(12)
    if backend(url) == "mysql":  # a key in another character set than the connection's
        code_type = sa.String(12, collation="latin1_german2_ci")
    member = sa.Table(
        "member",
        md,
        sa.Column("tenant", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("code", code_type, primary_key=True),
        sa.Column("email", sa.String(80), nullable=False),
        sa.Column("phone", sa.String(30)),
        sa.Column("nickname", sa.String(40)),
        sa.Column("birth_date", sa.Date),
        sa.Column("left_on", sa.Date, nullable=False),
    )
    note = sa.Table(
        "note",
        md,
        sa.Column("id", code_type, primary_key=True),  # the key of its per-row mask
        sa.Column("tenant", sa.Integer, nullable=False),
        sa.Column("member_id", sa.Integer, nullable=False),
        sa.Column("member_code", code_type, nullable=False),
        sa.Column("body", sa.String(200)),
    )
    engine = sa.create_engine(url)
    try:
        md.create_all(engine)
    finally:
        engine.dispose()
    return member, note


def seed(url: str, member: sa.Table, note: sa.Table, mixed: bool) -> None:
    """Tenant 1: ROWS expired rows and 5 recent ones; tenant 2: the same keys and values, all
    expired. With `mixed`, rows differ in which columns their masks change (a NULL phone, the
    fixed nickname already there, no birth date), and two rows hold a birth date that is read
    as text, not a date (`0044-03-15 BC` on PostgreSQL, `0000-03-15` on MariaDB, `1990-13-05`
    on SQLite), which the year mask writes as text (`0044-01-01 BC`, `0000-01-01`,
    `1990-01-01`)."""
    rows = []
    for i in range(ROWS + 5):
        row: dict[str, Any] = {
            "id": i,
            "code": f"code-{i % 3}",
            "email": f"person{i}@example.org",
            "phone": f"+31 6 {i:08d}",
            "nickname": f"nick {i}",
            "birth_date": dt.date(1990, 2 + i % 11, 2 + i % 27),
            "left_on": OLD if i < ROWS else RECENT,
        }
        if mixed:
            row["phone"] = None if i % 3 == 0 else row["phone"]
            row["nickname"] = "weg" if i % 4 == 0 else row["nickname"]
            row["birth_date"] = None if i % 5 == 0 else row["birth_date"]
        rows.append(row)
    notes = [
        {"id": note_id(t, i), "tenant": t, "member_id": i, "member_code": f"code-{i % 3}"}
        for t in (1, 2)
        for i in range(ROWS + 5)
    ]
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(member.insert(), [{"tenant": t, **r} for t in (1, 2) for r in rows])
            conn.execute(note.insert(), [{**n, "body": f"about {n['id']}"} for n in notes])
            if mixed:
                odd = {"sqlite": "'1990-13-05'", "postgresql": "'0044-03-15 BC'"}.get(
                    backend(url), "'0000-03-15'"
                )
                if backend(url) == "mysql":
                    conn.execute(sa.text("SET SESSION sql_mode = ''"))
                conn.execute(sa.text(f"UPDATE member SET birth_date = {odd} WHERE id IN (1, 2)"))
    finally:
        engine.dispose()


def snapshot(url: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Every member row by (tenant, id, code), its birth date as the database's text."""
    as_text = {
        "sqlite": "birth_date",
        "postgresql": "birth_date::text",
        "mysql": "CAST(birth_date AS CHAR)",
    }[backend(url)]
    query = f"SELECT tenant, id, code, email, phone, nickname, {as_text} FROM member"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {tuple(r[:3]): tuple(r[3:]) for r in conn.execute(sa.text(query))}
    finally:
        engine.dispose()


def note_id(tenant: int, i: int) -> str:
    """The note's primary key: `nöte-3` in tenant 1, `note-3` in tenant 2. On MariaDB the
    column is latin1_german2_ci, where ö is oe, so the two differ; in the connection's
    utf8mb4_general_ci ö is o and they are equal, so an UPDATE that compared the rows' text
    in utf8mb4 would change tenant 2's note with tenant 1's."""
    return f"n{'ö' if tenant == 1 else 'o'}te-{i}"


def notes(url: str) -> dict[str, Any]:
    """Every note's body by id."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {str(n): body for n, body in conn.execute(sa.text("SELECT id, body FROM note"))}
    finally:
        engine.dispose()


def masked(before: tuple[Any, ...]) -> tuple[Any, ...]:
    """What the masks make of one row's (email, phone, nickname, birth date text)."""
    email, phone, nickname, birth = before
    value: Any = birth
    if birth is not None and not birth.endswith(" BC"):
        with contextlib.suppress(ValueError):  # year 0, month 13: read as text
            value = dt.date.fromisoformat(birth)
    year = mask_value(MASKS[3], value, PEPPER)
    return (
        mask_value(MASKS[0], email, PEPPER),
        mask_value(MASKS[1], phone, PEPPER),
        mask_value(MASKS[2], nickname, PEPPER),
        year.isoformat() if isinstance(year, dt.date) else year,
    )


@contextmanager
def counting(engine: sa.Engine) -> Iterator[list[int]]:
    """UPDATE statements run on `engine` (an executemany counts once per parameter set)."""
    found = [0]

    def seen(_conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        if _UPDATE.match(statement):
            found[0] += len(params) if many else 1

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        yield found
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


def target() -> Target:
    """Tenant 1's expired members, all four masks, and their notes' bodies as keyed hashes
    (related rows masked row by row, by the note's primary key)."""
    notes_of = RelatedRows(
        "note",
        (("tenant", "tenant"), ("member_id", "id"), ("member_code", "code")),
        Change.ANONYMISE,
        (NOTE_MASK,),
    )
    return Target(
        Table("member", key=("tenant", "id", "code"), tenant_column="tenant"),
        1,
        "left_on",
        CUTOFF,
        dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        masks=MASKS,
        related=(notes_of,),
    )


@pytest.mark.parametrize("mixed", [False, True], ids=["same-columns", "mixed-columns"])
def test_a_batch_is_written_in_one_update(any_db_url: str, mixed: bool) -> None:
    """40 rows in one batch: one UPDATE for the members (MariaDB: one per set of changed
    columns) and one for their notes; every value by key is what the masks give, and
    nothing else changed."""
    member, note = create(any_db_url)
    seed(any_db_url, member, note, mixed)
    before, notes_before = snapshot(any_db_url), notes(any_db_url)
    connector = SqlConnector(any_db_url, pepper=PEPPER)
    connector.open()
    try:
        assert connector.verify([target().table]) == []
        keys = connector.select_expired(target(), None, 1000)
        assert sorted(keys) == sorted((1, i, f"code-{i % 3}") for i in range(ROWS))
        with counting(connector.engine) as updates:
            applied = connector.apply(target(), Change.ANONYMISE, keys)
    finally:
        connector.close()

    after = snapshot(any_db_url)
    expected = dict(before)
    changed = set()
    for (tenant, i, code), values in before.items():
        if tenant == 1 and i < ROWS:
            expected[(tenant, i, code)] = masked(values)
            if masked(values) != values:
                changed.add((tenant, i, code))
    assert after == expected  # tenant 2 (same keys) and tenant 1's recent rows untouched
    assert set(applied.changed_keys) == changed
    assert len(applied.changed_keys) == len(changed)
    assert changed == set(keys)  # every selected row has a mask that changes it
    anonymised = {note_id(1, i) for i in range(ROWS)}  # of the anonymised rows, in tenant 1
    notes_after = {
        n: mask_value(NOTE_MASK, body, PEPPER) if n in anonymised else body
        for n, body in notes_before.items()
    }
    assert notes(any_db_url) == notes_after
    assert dict(applied) == {"member": len(changed), "note": ROWS}

    shapes = {tuple(a != b for a, b in zip(before[k], expected[k], strict=True)) for k in changed}
    if backend(any_db_url) == "mysql":  # one per set of changed columns (and one for note)
        assert updates[0] == len(shapes) + 1
    else:
        assert updates[0] == 2  # member and note
    assert mixed == (len(shapes) > 1)
