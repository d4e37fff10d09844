"""Whether each mask of an anonymise stage fits the live column it writes (for `validate`).

A mask that cannot fit fails every batch of its rule, every night (a keyed hash of 25
characters in a VARCHAR(20), NULL in a NOT NULL column, one fixed text in a UNIQUE column),
so `validate` refuses it, naming the table, the column and a mask that would fit. What each
mask needs:

- `null`: a nullable column (and, under a NULLS NOT DISTINCT unique key, what `fixed` needs);
- `{fixed: TEXT}`: a text column at least as long as TEXT, or an ENUM that has TEXT;
- `year`: a DATE or TIMESTAMP column, or text of at least 10 characters (`YYYY-01-01`);
- `postcode_digits`: a text column;
- `keyed_hash`: a text column of at least 25 characters (or unbounded); a CHAR(n): n = 25;
- `{pseudonym: {length: N}}`: a text column of at least N characters; a CHAR(n): n = N.

`year` on text is a warning: it keeps the year of a `YYYY-MM-DD` text, any other text becomes
NULL. `fixed`, `year` and `postcode_digits` give many rows one value (or a few), so they also need
the column to be in no unique key, unless the key's other columns keep the rows apart.
A key's other columns keep the anonymised rows apart when they hold a unique key of their own
(masked there, if at all, by a keyed hash or a pseudonym), or when one of them is set to NULL by
`null` (rows with a NULL in a unique key never clash, unless it is NULLS NOT DISTINCT). Any mask
but `null` refuses a column of a foreign key (the new value would point at no row), and a
column another table's foreign key references with ON UPDATE RESTRICT / NO ACTION. Warnings:
`year` on a NOT NULL text column and `postcode_digits` on a NOT NULL column (a value they cannot
read becomes NULL, which fails that row), and a referenced column whose change cascades (or sets
NULL / the default): the run counts the rows the key changes, or blocks the row whose change would
reach another tenant's row, a row outside the product's schema, or a row of a table the rule
changes itself that its batch does not write (connectors/sqlupdatereach.py).

Why fixed text fits text columns only: PostgreSQL compares a bound text with an integer, date
or numeric column as `integer = character varying` and refuses the statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from connectors.anonymise import (
    KEYED_HASH_LENGTH,
    PSEUDONYM_MAX_LENGTH,
    PSEUDONYM_MIN_LENGTH,
    mask_length,
)
from connectors.base import (
    ColumnInfo,
    ColumnKind,
    ColumnMask,
    ForeignKeyRef,
    Mask,
    TableSchema,
    UniqueKey,
)

# Masks that give many rows one value (or a few): a unique key's column needs other columns to
# keep the rows apart. A pseudonym or keyed hash keeps different values different.
COLLAPSING = frozenset({Mask.FIXED, Mask.YEAR, Mask.POSTCODE_DIGITS})
YEAR_TEXT = len("2019-01-01")
TEXTUAL = frozenset({ColumnKind.TEXT, ColumnKind.UNKNOWN})


@dataclass(frozen=True)
class MaskFit:
    """A mask that does not fit its column (`fatal`), or a risk it runs (a warning).

    `message` names table.column, what the column is and why, and (when fatal) a mask that
    fits or what to change when none does.
    """

    column: str
    message: str
    fatal: bool = True


def check_masks(
    schema: TableSchema,
    masks: Sequence[ColumnMask],
    referenced_by: Sequence[ForeignKeyRef] = (),
) -> list[MaskFit]:
    """Every problem of the masks one stage writes to `schema`'s table, in the masks' order.

    `referenced_by` are the other tables' foreign keys that point at the table
    (`Connector.foreign_keys_to`, and `Connector.outside_keys_to`: those of tables outside
    the product's schema, named schema-qualified). A column the table does not have is
    skipped: `verify` reports it.
    """
    by_column = {m.column: m for m in masks}
    found: list[MaskFit] = []
    for mask in masks:
        column = schema.columns.get(mask.column)
        if column is None:
            continue
        where = f"{schema.name}.{column.name}"
        reasons = refusals(mask, column, schema, by_column, referenced_by)
        if reasons:
            fix = _suggestion(mask, column, schema, by_column, referenced_by)
            found.append(
                MaskFit(
                    mask.column,
                    f"{where} is {describe(column, schema)}: {written(mask)} {reasons[0]}; {fix}",
                )
            )
        for warning in _warnings(mask, column, referenced_by):
            found.append(MaskFit(mask.column, f"{where}: {written(mask)} {warning}", fatal=False))
    return found


def refusals(
    mask: ColumnMask,
    column: ColumnInfo,
    schema: TableSchema,
    by_column: Mapping[str, ColumnMask],
    referenced_by: Sequence[ForeignKeyRef] = (),
) -> list[str]:
    """Why `mask` cannot fit `column` (empty when it fits), each a phrase that follows the
    mask's written form: "keyed_hash writes 25 characters, ..."."""
    reasons: list[str] = []
    if mask.mask is Mask.NULL:
        if not column.nullable:
            reasons.append("writes NULL, which this NOT NULL column refuses")
    else:
        for ref in schema.references:
            if column.name in ref.columns:
                reasons.append(
                    f"would write a value no {ref.referred_table} row has, which the foreign "
                    f"key {_fk(ref)} refuses"
                )
        for ref in referenced_by:
            if column.name in ref.referred_columns and ref.on_update.blocks:
                reasons.append(
                    f"changes a value that {_fk(ref)} references with ON UPDATE "
                    f"{ref.on_update}: the update fails while such a {ref.qualified} row exists"
                )
        reasons.extend(_type_refusals(mask, column))
    clash = collapsed_key(mask, column, schema, by_column)
    if clash is not None:
        reasons.append(_clash(mask, column, clash))
    return reasons


def _type_refusals(mask: ColumnMask, column: ColumnInfo) -> list[str]:
    """Why a mask other than `null` does not fit the column's type or width."""
    kind, length = column.kind, column.length
    if mask.mask is Mask.FIXED:
        text = mask.text or ""
        if kind is ColumnKind.CHOICE:
            if text not in column.choices:
                return [f"is not one of the column's values ({', '.join(column.choices)})"]
            return []
        if kind not in TEXTUAL:
            return [f"is text, which the column's type {column.type_name} does not take"]
        if length is not None and len(text) > length:
            return [f"is {len(text)} characters, more than the column's {length}"]
        return []
    if mask.mask is Mask.YEAR:
        if kind in (ColumnKind.DATE, ColumnKind.DATETIME):
            return []
        if kind not in TEXTUAL:
            return [f"needs a DATE or TIMESTAMP column (or text), not {column.type_name}"]
        if length is not None and length < YEAR_TEXT:
            return [f"writes YYYY-01-01 ({YEAR_TEXT} characters), more than the column's {length}"]
        return []
    if mask.mask is Mask.POSTCODE_DIGITS:
        if kind not in TEXTUAL:
            return [f"needs a text column, not {column.type_name}"]
        return []
    if mask.mask in (Mask.KEYED_HASH, Mask.PSEUDONYM):
        width = mask_length(mask)
        if kind not in TEXTUAL:
            return [f"writes text, which the column's type {column.type_name} does not take"]
        if length is not None and width > length:
            return [f"writes {width} characters, more than the column's {length}"]
        if column.padded and length is not None and width != length:
            return [
                f"writes {width} characters into a CHAR({length}), which pads them with "
                "spaces: the padded value no longer reads as a pseudonym, so every run would "
                "change the row again"
            ]
    return []


def collapsed_key(
    mask: ColumnMask,
    column: ColumnInfo,
    schema: TableSchema,
    by_column: Mapping[str, ColumnMask],
) -> UniqueKey | None:
    """A unique key of `column` that the masks would break: `mask` gives anonymised rows one
    value (or a few), and nothing else in the key keeps them apart. None when none."""
    if mask.mask not in COLLAPSING and mask.mask is not Mask.NULL:
        return None
    for key in schema.unique:
        if column.name not in key.columns:
            continue
        if mask.mask is Mask.NULL and key.nulls_distinct:
            continue  # NULL in a unique key never clashes
        others = [c for c in key.columns if c != column.name]
        if key.nulls_distinct and any(_is_null(by_column.get(c)) for c in others):
            continue
        kept = {c for c in others if not _collapses(by_column.get(c))}
        if any(other is not key and set(other.columns) <= kept for other in schema.unique):
            continue
        return key
    return None


def _is_null(mask: ColumnMask | None) -> bool:
    return mask is not None and mask.mask is Mask.NULL


def _collapses(mask: ColumnMask | None) -> bool:
    return mask is not None and (mask.mask in COLLAPSING or mask.mask is Mask.NULL)


def _clash(mask: ColumnMask, column: ColumnInfo, key: UniqueKey) -> str:
    what = {
        Mask.FIXED: "writes the same text in every anonymised row",
        Mask.YEAR: "gives every anonymised row of one year the same value",
        Mask.POSTCODE_DIGITS: "gives every anonymised row of one postcode area the same value",
        Mask.NULL: "writes NULL in every anonymised row",
    }[mask.mask]
    if key.columns == (column.name,):
        return f"{what}, which {key_name(key)} allows once"
    others = ", ".join(c for c in key.columns if c != column.name)
    return (
        f"{what}, which {key_name(key)} allows once per {others}, and {others} does not keep "
        "the rows apart"
    )


def key_name(key: UniqueKey) -> str:
    """`UNIQUE ux_child_username (username)` or `PRIMARY KEY (id)`, as DDL writes them."""
    if key.primary:
        return f"PRIMARY KEY ({', '.join(key.columns)})"
    named = f" {key.name}" if key.name else ""
    return f"UNIQUE{named} ({', '.join(key.columns)})"


def _warnings(
    mask: ColumnMask, column: ColumnInfo, referenced_by: Sequence[ForeignKeyRef]
) -> list[str]:
    found: list[str] = []
    if mask.mask is Mask.YEAR and column.kind in TEXTUAL:
        found.append(
            f"on a text column ({column.type_name}) keeps the year of a YYYY-MM-DD text and "
            "turns any other text into NULL"
            + (
                ", which this NOT NULL column refuses: such a row fails its batch"
                if not column.nullable
                else ""
            )
        )
    if mask.mask is Mask.POSTCODE_DIGITS and not column.nullable:
        found.append(
            "turns a value without digits into NULL, which this NOT NULL column refuses: such "
            "a row fails its batch"
        )
    if mask.mask is not Mask.NULL:
        for ref in referenced_by:
            if column.name in ref.referred_columns and not ref.on_update.blocks:
                found.append(
                    f"changes a value that {_fk(ref)} references with ON UPDATE "
                    f"{ref.on_update}: the change reaches those {ref.qualified} rows too; "
                    + _update_run(ref)
                )
    return found


def _update_run(ref: ForeignKeyRef) -> str:
    """What a run does about an acting ON UPDATE key (connectors/sqlupdatereach.py)."""
    if ref.schema is not None:
        return (
            f"{ref.qualified} is outside the product's schema, which the run neither counts "
            "nor checks: a row such a row references is left (blocked, as under RESTRICT) "
            "until none does"
        )
    return (
        "the run counts them in the audit, and leaves a row (blocked, as under RESTRICT) "
        "whose change would reach a row of another tenant, or a row of a table the rule "
        "changes itself that its batch does not write"
    )


def fitting_mask(
    refused: ColumnMask,
    column: ColumnInfo,
    schema: TableSchema,
    by_column: Mapping[str, ColumnMask],
    referenced_by: Sequence[ForeignKeyRef] = (),
) -> ColumnMask | None:
    """The first mask that fits `column` (no `refusals`), in an order that suits what was
    asked (a pseudonym for a keyed hash, a fixed text for `null`, ...); None when none does."""
    for candidate in _candidates(refused, column):
        trial = {**by_column, column.name: candidate}
        if candidate != refused and not refusals(candidate, column, schema, trial, referenced_by):
            return candidate
    return None


def _suggestion(
    refused: ColumnMask,
    column: ColumnInfo,
    schema: TableSchema,
    by_column: Mapping[str, ColumnMask],
    referenced_by: Sequence[ForeignKeyRef],
) -> str:
    """`use MASK instead` with a mask that fits; else what to change, since none does."""
    fits = fitting_mask(refused, column, schema, by_column, referenced_by)
    if fits is not None:
        return f"use {written(fits)} instead{_why(fits)}"
    references = [r.referred_table for r in schema.references if column.name in r.columns]
    if references:
        return (
            f"no anonymisation fits a NOT NULL reference to {references[0]}: delete these rows "
            "instead of anonymising them"
        )
    if (
        column.kind in TEXTUAL
        and column.length is not None
        and column.length < PSEUDONYM_MIN_LENGTH
    ):
        return (
            f"no anonymisation fits: widen the column to at least {PSEUDONYM_MIN_LENGTH} "
            f"characters for {{pseudonym: {{length: {PSEUDONYM_MIN_LENGTH}}}}}, or delete "
            "these rows instead of anonymising them"
        )
    return "no anonymisation fits: delete these rows instead of anonymising them"


def _candidates(refused: ColumnMask, column: ColumnInfo) -> list[ColumnMask]:
    name = column.name
    null = ColumnMask(name, Mask.NULL)
    dated = column.kind in (ColumnKind.DATE, ColumnKind.DATETIME)
    year = [ColumnMask(name, Mask.YEAR)] if dated else []
    fixed = ColumnMask(
        name,
        Mask.FIXED,
        "anonymised" if column.length is None or column.length >= len("anonymised") else "-",
    )
    pseudonym: list[ColumnMask] = []
    if column.padded and column.length is not None:
        if PSEUDONYM_MIN_LENGTH <= column.length <= PSEUDONYM_MAX_LENGTH:
            pseudonym.append(ColumnMask(name, Mask.PSEUDONYM, length=column.length))
    elif column.length is None or column.length >= KEYED_HASH_LENGTH:
        pseudonym.append(ColumnMask(name, Mask.KEYED_HASH))
    elif column.length >= PSEUDONYM_MIN_LENGTH:
        pseudonym.append(ColumnMask(name, Mask.PSEUDONYM, length=column.length))
    order: dict[Mask, list[ColumnMask]] = {
        Mask.NULL: [*year, fixed, *pseudonym],
        Mask.FIXED: [*pseudonym, *year, null, fixed],
        Mask.YEAR: [null, fixed, *pseudonym],
        Mask.POSTCODE_DIGITS: [null, fixed, *pseudonym],
        Mask.KEYED_HASH: [*pseudonym, *year, null, fixed],
        Mask.PSEUDONYM: [*pseudonym, *year, null, fixed],
    }
    return order[refused.mask]


def _why(mask: ColumnMask) -> str:
    if mask.mask in (Mask.PSEUDONYM, Mask.KEYED_HASH):
        width = mask_length(mask)
        return f" (a stable pseudonym of {width} characters that keeps different values apart)"
    return ""


def written(mask: ColumnMask) -> str:
    """A mask as the mapping writes it: `"null"`, `{fixed: "…"}`, `{pseudonym: {length: N}}`."""
    if mask.mask is Mask.NULL:
        return '"null"'
    if mask.mask is Mask.FIXED:
        text = (mask.text or "").replace("\\", "\\\\").replace('"', '\\"')
        return '{fixed: "' + text + '"}'
    if mask.mask is Mask.PSEUDONYM:
        return f"{{pseudonym: {{length: {mask.length}}}}}"
    return str(mask.mask)


def describe(column: ColumnInfo, schema: TableSchema) -> str:
    """`VARCHAR(20) NOT NULL, UNIQUE uq_child_username (username)`: the type and what
    constrains the column."""
    parts = [column.type_name + ("" if column.nullable else " NOT NULL")]
    for key in schema.unique:
        if column.name in key.columns:
            parts.append(key_name(key))
    for ref in schema.references:
        if column.name in ref.columns:
            parts.append(f"REFERENCES {ref.referred_table}")
    return ", ".join(parts)


def _fk(ref: ForeignKeyRef) -> str:
    named = f"{ref.name}, " if ref.name else ""
    return (
        f"{named}{ref.qualified}({', '.join(ref.columns)}) → "
        f"{ref.referred_table}({', '.join(ref.referred_columns)})"
    )
