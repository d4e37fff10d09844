"""Whether a mask fits its column (connectors/maskfit.py), without a database.

The cases of issue 9 one by one, then properties over generated columns, keys and masks: a
refused mask's message names table.column and the mask that `fitting_mask` proposes, and that
mask is never refused itself.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from connectors.anonymise import KEYED_HASH_LENGTH, PSEUDONYM_MIN_LENGTH
from connectors.base import (
    ColumnInfo,
    ColumnKind,
    ColumnMask,
    ForeignKeyRef,
    Mask,
    RefAction,
    TableSchema,
    UniqueKey,
)
from connectors.maskfit import check_masks, collapsed_key, fitting_mask, refusals, written
from worker.config.models import _masking
from worker.targets import column_mask


def text(name: str, length: int | None = 20, *, nullable: bool = True, **extra: Any) -> ColumnInfo:
    kind = f"VARCHAR({length})" if length is not None else "TEXT"
    return ColumnInfo(name, ColumnKind.TEXT, kind, nullable, length, **extra)


def schema(*columns: ColumnInfo, unique: tuple[UniqueKey, ...] = (), **extra: Any) -> TableSchema:
    return TableSchema("child", {c.name: c for c in columns}, unique, **extra)


ID = ColumnInfo("id", ColumnKind.INTEGER, "INTEGER", False)
PK = UniqueKey(None, ("id",), primary=True)
USERNAME = text("username", 20, nullable=False)
UNIQUE_USERNAME = UniqueKey("ux_username", ("username",))


def problems(
    table: TableSchema, *masks: ColumnMask, refs: tuple[ForeignKeyRef, ...] = ()
) -> list[str]:
    return [p.message for p in check_masks(table, masks, refs) if p.fatal]


# --- the cases of the issue ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "why"),
    [
        (
            ColumnMask("username", Mask.NULL),
            '"null" writes NULL, which this NOT NULL column refuses',
        ),
        (
            ColumnMask("username", Mask.FIXED, "gone"),
            '{fixed: "gone"} writes the same text in every anonymised row, which UNIQUE '
            "ux_username (username) allows once",
        ),
        (
            ColumnMask("username", Mask.KEYED_HASH),
            "keyed_hash writes 25 characters, more than the column's 20",
        ),
    ],
)
def test_a_unique_not_null_varchar_20_takes_a_pseudonym_of_20(mask: ColumnMask, why: str) -> None:
    """null, a fixed text and a keyed hash are refused on VARCHAR(20) NOT NULL UNIQUE, each
    message naming child.username and {pseudonym: {length: 20}}, which fits."""
    table = schema(ID, USERNAME, unique=(PK, UNIQUE_USERNAME))
    [message] = problems(table, mask)
    assert message.startswith(
        "child.username is VARCHAR(20) NOT NULL, UNIQUE ux_username (username): "
    )
    assert why in message
    assert "use {pseudonym: {length: 20}} instead" in message
    assert problems(table, ColumnMask("username", Mask.PSEUDONYM, length=20)) == []


def test_a_column_narrower_than_any_pseudonym_says_to_widen_it() -> None:
    """VARCHAR(12) NOT NULL UNIQUE: no mask fits; the message says how wide a pseudonym needs."""
    narrow = text("username", 12, nullable=False)
    table = schema(narrow, unique=(UNIQUE_USERNAME,))
    [message] = problems(table, ColumnMask("username", Mask.KEYED_HASH))
    assert "no anonymisation fits: widen the column to at least 17 characters" in message


def test_a_char_column_needs_a_pseudonym_of_its_exact_width() -> None:
    """CHAR(30) pads a 25-character keyed hash with spaces (PostgreSQL): refused, with
    {pseudonym: {length: 30}}."""
    padded = ColumnInfo("code", ColumnKind.TEXT, "CHAR(30)", True, 30, padded=True)
    [message] = problems(schema(padded), ColumnMask("code", Mask.KEYED_HASH))
    assert "pads them with spaces" in message
    assert "use {pseudonym: {length: 30}} instead" in message
    assert problems(schema(padded), ColumnMask("code", Mask.PSEUDONYM, length=30)) == []


def test_a_fixed_text_must_be_a_value_of_an_enum() -> None:
    """An ENUM column takes a fixed text only if it is one of its values."""
    gender = ColumnInfo("gender", ColumnKind.CHOICE, "ENUM", True, 1, choices=("m", "f", "x"))
    assert problems(schema(gender), ColumnMask("gender", Mask.FIXED, "x")) == []
    [message] = problems(schema(gender), ColumnMask("gender", Mask.FIXED, "?"))
    assert "is not one of the column's values (m, f, x)" in message


def test_a_referenced_column_refuses_a_change_that_a_foreign_key_restricts() -> None:
    """invoice(user_name) references child(username) ON UPDATE RESTRICT: a pseudonym is
    refused; with ON UPDATE CASCADE it is a warning."""
    table = schema(text("username", 40, nullable=False), unique=(UNIQUE_USERNAME,))
    ref = ForeignKeyRef("fk_inv", "invoice", ("user_name",), "child", ("username",))
    mask = ColumnMask("username", Mask.KEYED_HASH)
    [message] = problems(table, mask, refs=(ref,))
    assert "references with ON UPDATE NO ACTION: the update fails" in message
    cascade = ForeignKeyRef(
        "fk_inv", "invoice", ("user_name",), "child", ("username",), on_update=RefAction.CASCADE
    )
    [found] = check_masks(table, [mask], [cascade])
    assert not found.fatal
    assert "the change reaches those invoice rows too; the run counts them" in found.message
    assert "leaves a row (blocked, as under RESTRICT)" in found.message


# --- unique keys -----------------------------------------------------------------------------


TENANT = ColumnInfo("tenant", ColumnKind.INTEGER, "INTEGER", False)
NICK = text("nick", 40)


@pytest.mark.parametrize(
    ("keys", "masks", "clash"),
    [
        pytest.param(
            (UniqueKey("k", ("tenant", "nick")),), {}, True, id="tenant-does-not-separate"
        ),
        pytest.param((PK, UniqueKey("k", ("id", "nick"))), {}, False, id="key-separates"),
        pytest.param(
            (PK, UniqueKey("k", ("id", "nick"))),
            {"id": ColumnMask("id", Mask.FIXED, "0")},
            True,
            id="masked-key-does-not-separate",
        ),
        pytest.param(
            (UniqueKey("k", ("tenant", "nick")), UniqueKey("t", ("tenant",))),
            {},
            False,
            id="unique-tenant-separates",
        ),
        pytest.param(
            (UniqueKey("k", ("tenant", "nick", "born")),),
            {"born": ColumnMask("born", Mask.NULL)},
            False,
            id="null-separates",
        ),
        pytest.param(
            (UniqueKey("k", ("tenant", "nick", "born"), nulls_distinct=False),),
            {"born": ColumnMask("born", Mask.NULL)},
            True,
            id="nulls-not-distinct",
        ),
        pytest.param(
            (UniqueKey("k", ("nick", "mail")), UniqueKey("m", ("mail",))),
            {"mail": ColumnMask("mail", Mask.KEYED_HASH)},
            False,
            id="pseudonymised-key-separates",
        ),
    ],
)
def test_a_collapsing_mask_needs_other_columns_that_keep_rows_apart(
    keys: tuple[UniqueKey, ...], masks: dict[str, ColumnMask], clash: bool
) -> None:
    """A fixed nick in a unique key clashes unless the key's other columns, as masked, hold a
    unique key of their own or a NULL (where NULLs are distinct)."""
    table = schema(ID, TENANT, NICK, text("born"), text("mail"), unique=keys)
    mask = ColumnMask("nick", Mask.FIXED, "gone")
    found = collapsed_key(mask, NICK, table, {**masks, "nick": mask})
    assert (found is not None) == clash


# --- properties ------------------------------------------------------------------------------


kinds = st.sampled_from(list(ColumnKind))
lengths = st.one_of(st.none(), st.integers(1, 80))
columns = st.builds(
    lambda name, kind, length, nullable, padded: ColumnInfo(
        name,
        kind,
        kind.value.upper(),
        nullable,
        length if kind in (ColumnKind.TEXT, ColumnKind.CHOICE) else None,
        padded and kind is ColumnKind.TEXT and length is not None,
        ("a", "anonymised") if kind is ColumnKind.CHOICE else (),
    ),
    st.sampled_from(["a", "b", "c"]),
    kinds,
    lengths,
    st.booleans(),
    st.booleans(),
)


def masks_for(name: str) -> st.SearchStrategy[ColumnMask]:
    return st.one_of(
        st.sampled_from(
            [
                ColumnMask(name, m)
                for m in (Mask.NULL, Mask.YEAR, Mask.POSTCODE_DIGITS, Mask.KEYED_HASH)
            ]
        ),
        st.text(min_size=0, max_size=30).map(lambda t: ColumnMask(name, Mask.FIXED, t)),
        st.integers(PSEUDONYM_MIN_LENGTH, 40).map(
            lambda n: ColumnMask(name, Mask.PSEUDONYM, length=n)
        ),
    )


@st.composite
def tables(draw: st.DrawFn) -> tuple[TableSchema, list[ColumnMask]]:
    cols = {c.name: c for c in draw(st.lists(columns, min_size=1, max_size=3))}
    names = sorted(cols)
    keys = draw(
        st.lists(
            st.builds(
                lambda chosen, distinct: UniqueKey(None, tuple(dict.fromkeys(chosen)), distinct),
                st.lists(st.sampled_from(names), min_size=1, max_size=3),
                st.booleans(),
            ),
            max_size=3,
        )
    )
    masked = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    masks = [draw(masks_for(name)) for name in masked]
    return TableSchema("t", cols, tuple(keys)), masks


@given(tables())
def test_a_refused_mask_names_its_column_and_a_mask_that_fits(
    case: tuple[TableSchema, list[ColumnMask]],
) -> None:
    """For any column, keys and masks: each refusal starts with table.column, and the mask
    proposed instead (if any) is in the message and is itself accepted."""
    table, masks = case
    by_column = {m.column: m for m in masks}
    fatal = {p.column: p.message for p in check_masks(table, masks) if p.fatal}
    for mask in masks:
        column = table.columns[mask.column]
        refused = refusals(mask, column, table, by_column)
        assert bool(refused) == (mask.column in fatal)
        if not refused:
            continue
        assert fatal[mask.column].startswith(f"t.{mask.column} is ")
        fits = fitting_mask(mask, column, table, by_column)
        if fits is None:
            assert "no anonymisation fits" in fatal[mask.column]
            continue
        assert f"use {written(fits)} instead" in fatal[mask.column]
        assert refusals(fits, column, table, {**by_column, mask.column: fits}) == []


@given(st.integers(1, 80), st.booleans())
def test_a_pseudonym_is_proposed_for_any_text_column_wide_enough(length: int, padded: bool) -> None:
    """A text column of at least 17 characters always takes a pseudonym (a keyed hash from 25,
    except CHAR(n), which takes exactly n); a narrower one none."""
    column = text("c", length, nullable=False, padded=padded)
    table = schema(column, unique=(UniqueKey(None, ("c",)),))
    fits = fitting_mask(ColumnMask("c", Mask.FIXED, "x"), column, table, {})
    if length < PSEUDONYM_MIN_LENGTH or (padded and length > 69):
        assert fits is None
    elif padded or length < KEYED_HASH_LENGTH:
        assert fits == ColumnMask("c", Mask.PSEUDONYM, length=length)
    else:
        assert fits == ColumnMask("c", Mask.KEYED_HASH)


@given(
    st.one_of(
        st.text(st.characters(categories=["L", "N", "P", "S", "Zs"]), max_size=30)
        .filter(lambda t: t == t.strip())  # a mapping's texts are read stripped
        .map(lambda t: ColumnMask("c", Mask.FIXED, t)),
        st.integers(PSEUDONYM_MIN_LENGTH, 69).map(
            lambda n: ColumnMask("c", Mask.PSEUDONYM, length=n)
        ),
        st.sampled_from([ColumnMask("c", m) for m in (Mask.NULL, Mask.YEAR, Mask.KEYED_HASH)]),
    )
)
def test_a_proposed_mask_is_written_as_the_mapping_reads_it(mask: ColumnMask) -> None:
    """The form a message proposes, pasted into a mapping, reads back as the same mask."""
    masking = _masking(yaml.safe_load(f"c: {written(mask)}")["c"])
    assert column_mask("c", masking) == mask
