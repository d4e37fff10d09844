"""The mapping language for real schemas: time bases, row conditions and related rows.

All of it is data, never SQL text: the connector builds the statements from reflected tables.

Time bases (a subject's `dates`), each a name → one of:

    left: left_on                                   a date column of the subject
    end: {first_of: [contract_end, last_activity]}  the first of these that is not NULL
    left: {latest: ended_on,                         the latest end date over the subject's
           from: {table: enrolment,                  rows in a related table; a related row
                  references: {pupil_id: id}},       with no end date means "not ended"
           if_none: keep}                            (kept); no related rows: `keep` (the
                                                     default) or another date of the subject
    first: {earliest: started_on, from: {...}}       the earliest non-NULL value

Row conditions (`where` on a subject or a rule), each one column and one test:

    {column: status, equals: Left}     {column: status, in: [Left, Moved]}
    {column: status, not_equals: Full} {column: status, not_in: [Full]}
    {column: archived_at, is_null: false}
    {column: grade, ge: 8}   (lt, le, gt, ge)

A condition on a NULL value is false, except `is_null: true`. Values are whole numbers,
decimals, texts or booleans; a date is written as a text `YYYY-MM-DD` (`validate` checks each
value against the live column's type).

Related rows of a rule that anonymises (`related`): rows of another table that point at an
anonymised subject row and are deleted or anonymised with it, in the same transaction:

    related:
      - {table: medical_record, references: {pupil_id: id}, action: delete,
         columns: {notes: health}}
      - {table: emergency_contact, references: {pupil_id: id}, action: anonymise,
         columns: {name: name, phone: phone}, with: {name: "null", phone: "null"}}
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from worker.config.base import Model
from worker.config.values import Identifier

Scalar = StrictBool | StrictInt | StrictFloat | StrictStr


class FirstOf(Model):
    """The first of several date columns of the subject that is not NULL (COALESCE)."""

    first_of: tuple[Identifier, ...] = Field(min_length=2, max_length=8)


class FromTable(Model):
    """A related table and how its rows point at the subject: own column → subject column."""

    table: Identifier
    references: dict[Identifier, Identifier] = Field(min_length=1, max_length=4)


class Aggregate(Model):
    """The latest (or earliest) value of a date column over the subject's related rows."""

    latest: Identifier | None = None
    earliest: Identifier | None = None
    from_: FromTable = Field(alias="from")
    if_none: str = Field(default="keep", max_length=100)

    @model_validator(mode="after")
    def _one_aggregate(self) -> Aggregate:
        if (self.latest is None) == (self.earliest is None):
            raise ValueError(
                "set exactly one of `latest: COLUMN` (e.g. the last end date; a related row "
                "without one means not ended) or `earliest: COLUMN`"
            )
        return self

    @property
    def column(self) -> str:
        return self.latest if self.latest is not None else str(self.earliest)


def date_spec(value: Any) -> Any:
    """A `dates` entry: a column name, {first_of: [...]} or {latest|earliest: ..., from: ...}."""
    if isinstance(value, dict):
        if "first_of" in value:
            return FirstOf.model_validate(value)
        if "latest" in value or "earliest" in value or "from" in value:
            return Aggregate.model_validate(value)
        raise ValueError(
            "a time basis is a column name, {first_of: [COLUMN, ...]}, or "
            "{latest: COLUMN, from: {table: T, references: {OWN: SUBJECT}}}"
        )
    return value


DateSpec = Identifier | FirstOf | Aggregate


# The whole numbers every database's integer columns can hold at most (SQLite, BIGINT).
INT64 = (-(2**63), 2**63 - 1)


def literal_problem(value: Any) -> str | None:
    """Why a condition's literal can never be compared with a column, whatever the schema:
    a whole number beyond 64 bits (SQLite's driver overflows, PostgreSQL refuses it against
    an integer column, and no integer column holds it), or a text with a NUL character
    (PostgreSQL refuses it in any text). None when it can be; the live schema's column width
    is checked by `validate` (connectors/sqlbasis.py)."""
    whole = isinstance(value, int) and not isinstance(value, bool)
    if whole and not INT64[0] <= value <= INT64[1]:
        return (
            f"the whole number {value} is beyond what any database's integer column holds "
            f"({INT64[0]} to {INT64[1]}): no row has it and the database would refuse the "
            "comparison; correct the value"
        )
    if isinstance(value, str) and "\x00" in value:
        return (
            "the text holds a NUL character (\\0), which PostgreSQL refuses in any text and "
            "no stored text holds; remove it"
        )
    return None


class Operator(enum.StrEnum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    IN = "in"
    NOT_IN = "not_in"
    IS_NULL = "is_null"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"


class Condition(Model):
    """One test on one column of the subject's table; exactly one operator."""

    column: Identifier
    equals: Scalar | None = None
    not_equals: Scalar | None = None
    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in", min_length=1, max_length=100)
    not_in: tuple[Scalar, ...] | None = Field(default=None, min_length=1, max_length=100)
    is_null: StrictBool | None = None
    lt: Scalar | None = None
    le: Scalar | None = None
    gt: Scalar | None = None
    ge: Scalar | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain_mistakes(cls, data: Any) -> Any:
        """Say the fix for tests written with NULL or an empty list, before the field
        checks' generic wording."""
        if not isinstance(data, dict):
            return data
        for op in Operator:
            if op is Operator.IS_NULL or op.value not in data:
                continue
            value = data[op.value]
            if value is None:
                raise ValueError(
                    f"`{op.value}: null` compares with nothing (a test on NULL is never true): "
                    "write `is_null: true` (or `is_null: false`)"
                )
            if op in (Operator.IN, Operator.NOT_IN) and isinstance(value, list):
                if not value:
                    raise ValueError(
                        f"`{op.value}: []` lists no value: give at least one, or leave the "
                        "condition out"
                    )
                if any(v is None for v in value):
                    raise ValueError(
                        f"`{op.value}` holds null, which matches nothing: leave it out and add "
                        "a condition `is_null: true` if NULL rows are meant"
                    )
        return data

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [op for op in Operator if self._value(op) is not None]
        if len(given) != 1:
            names = ", ".join(op.value for op in Operator)
            raise ValueError(f"give exactly one test of the column: one of {names}")
        value = self.value
        for literal in value if isinstance(value, tuple) else (value,):
            problem = literal_problem(literal)
            if problem is not None:
                raise ValueError(problem)
        return self

    def _value(self, op: Operator) -> Any:
        return getattr(self, "in_" if op is Operator.IN else op.value)

    @property
    def operator(self) -> Operator:
        return next(op for op in Operator if self._value(op) is not None)

    @property
    def value(self) -> Any:
        return self._value(self.operator)


class RelatedAction(enum.StrEnum):
    DELETE = "delete"
    ANONYMISE = "anonymise"
