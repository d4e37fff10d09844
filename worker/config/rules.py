"""Configuration models of a product mapping's rules: what a valid rule looks like.

A rule (single-stage or phased `stages`), its time basis (`After`), its periods (a fixed
`Period` or a customer's `SettingPeriod`), how columns are anonymised (`Masking`, written as a
name, `{fixed: TEXT}` or `{pseudonym: {length: N}}`), the related rows that go with an
anonymised row, and its approval policy. The rest of a product mapping, the catalogue and
customer files are in `worker.config.models`, which re-exports every name here.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import (
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictInt,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from worker.breaker import BreakerLimits
from worker.config.base import Model
from worker.config.language import Condition, RelatedAction
from worker.config.values import (
    _ID_RE,
    _NAME_RE,
    ABSURD,
    MAX_ID,
    Identifier,
    check_amount,
    parse_period,
    pseudonym_length,
    short,
)
from worker.periods import Period, Unit


class Action(enum.StrEnum):
    DELETE = "delete"
    ANONYMISE = "anonymise"
    UNLINK = "unlink"


class Strategy(enum.StrEnum):
    """How one column is anonymised."""

    NULL = "null"
    FIXED = "fixed"
    YEAR = "year"
    POSTCODE_DIGITS = "postcode_digits"
    KEYED_HASH = "keyed_hash"
    PSEUDONYM = "pseudonym"


class Masking(Model):
    """One column's anonymisation: `text` for a fixed text, `length` (characters) for a
    pseudonym. Dumped without `length` unless set, so the policy fingerprint of a mapping
    without pseudonyms is what it was before they existed."""

    strategy: Strategy
    text: str | None = None
    length: int | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if self.length is None and isinstance(data, dict):
            data.pop("length", None)
        return data


_WRITTEN = "a name, {fixed: TEXT} or {pseudonym: {length: N}}"


def _masking(value: Any) -> Masking:
    if isinstance(value, Masking):
        return value
    if value is None:
        return Masking(strategy=Strategy.NULL)
    if isinstance(value, str):
        try:
            strategy = Strategy(value)
        except ValueError:
            bare = (s.value for s in Strategy if s not in (Strategy.FIXED, Strategy.PSEUDONYM))
            raise ValueError(
                f"unknown anonymisation {value!r}; use one of {', '.join(bare)}, "
                "{fixed: TEXT} or {pseudonym: {length: N}}"
            ) from None
        if strategy is Strategy.FIXED:
            raise ValueError("write a fixed text as {fixed: TEXT}")
        if strategy is Strategy.PSEUDONYM:
            raise ValueError(
                "write a pseudonym as {pseudonym: {length: N}}, N the column's width in "
                "characters (validate names it)"
            )
        return Masking(strategy=strategy)
    if isinstance(value, dict) and set(value) == {"fixed"} and isinstance(value["fixed"], str):
        return Masking(strategy=Strategy.FIXED, text=value["fixed"])
    if isinstance(value, dict) and set(value) == {"pseudonym"}:
        return Masking(strategy=Strategy.PSEUDONYM, length=pseudonym_length(value["pseudonym"]))
    raise ValueError(f"{short(value)} is not an anonymisation; use {_WRITTEN}")


def _mask_map(value: Any) -> Any:
    """A `with:` mapping (column → anonymisation) with each value read by `_masking`."""
    if isinstance(value, dict):
        return {k: _masking(v) for k, v in value.items()}
    return value


class Related(Model):
    """Rows of another table that go with a subject row a rule anonymises: deleted, or
    anonymised with their own `with`, in the same transaction (language.py)."""

    table: Identifier
    references: dict[Identifier, Identifier] = Field(min_length=1, max_length=4)
    action: RelatedAction
    columns: dict[Identifier, str] = {}
    with_: dict[Identifier, Masking] = Field(default={}, alias="with")

    _parse_masks = field_validator("with_", mode="before")(_mask_map)

    @model_validator(mode="after")
    def _with_matches_action(self) -> Related:
        if self.action is RelatedAction.ANONYMISE and not self.with_:
            raise ValueError("related rows to anonymise need `with`: column → anonymisation")
        if self.action is RelatedAction.DELETE and self.with_:
            raise ValueError("related rows to delete take no `with`")
        return self


class SettingPeriod(Model):
    """A period the customer sets (in its file's `settings`), with a default."""

    setting: str = Field(pattern=_NAME_RE, max_length=MAX_ID)
    default: StrictInt
    unit: Unit = Unit.MONTHS
    min: StrictInt = 1
    max: StrictInt | None = None

    @property
    def upper(self) -> int:
        """The largest value a customer may set: `max`, or 50 years in the unit."""
        return self.max if self.max is not None else ABSURD[self.unit]

    @model_validator(mode="after")
    def _bounds(self) -> SettingPeriod:
        check_amount(self.min, self.unit, "a minimum")
        if self.max is not None:
            check_amount(self.max, self.unit, "a maximum")
        check_amount(self.default, self.unit, "a default")
        if self.min > self.upper:
            raise ValueError(f"min {self.min} is above max {self.upper}; swap or correct them")
        if not self.min <= self.default <= self.upper:
            raise ValueError(
                f"default {self.default} is outside min {self.min} .. max {self.upper}; "
                "customers without the setting would get it"
            )
        return self


PeriodSpec = Period | SettingPeriod


def _period_spec(value: Any) -> Any:
    """ "24m" → Period; {setting: …} → SettingPeriod, with one clear message per problem."""
    if value is None:
        raise ValueError(
            "a period is required: write e.g. 90d, 24m or 7y, or "
            "{setting: NAME, default: N, unit: months} for a customer setting"
        )
    if isinstance(value, str | Period):
        return parse_period(value)
    if isinstance(value, dict):
        try:
            return SettingPeriod.model_validate(value)
        except ValidationError as exc:
            raise ValueError(
                "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'period'}: "
                    f"{'unknown field' if e['type'] == 'extra_forbidden' else e['msg']}"
                    for e in exc.errors()
                ).replace("Value error, ", "")
            ) from None
    if isinstance(value, SettingPeriod):
        return value
    raise ValueError(
        f"{short(value)} is not a period; write e.g. 90d, 24m or 7y, or "
        "{setting: NAME, default: N, unit: months} for a customer setting"
    )


def _optional_period_spec(value: Any) -> Any:
    return None if value is None else _period_spec(value)


class Stage(Model):
    """One stage of a rule: after `period`, do `action`."""

    stage: str = Field(default="", pattern=r"^$|^[a-z0-9][a-z0-9_-]*$")
    period: PeriodSpec
    action: Action
    with_: dict[Identifier, Masking] = Field(default={}, alias="with")

    _parse_period = field_validator("period", mode="before")(_period_spec)

    _parse_masks = field_validator("with_", mode="before")(_mask_map)

    @model_validator(mode="after")
    def _with_matches_action(self) -> Stage:
        if self.action is Action.ANONYMISE and not self.with_:
            raise ValueError("an anonymise action needs `with`: column → anonymisation")
        if self.action is not Action.ANONYMISE and self.with_:
            raise ValueError(f"`with` belongs to anonymise; action {self.action} takes none")
        return self


class After(Model):
    """The time basis: a date column of the subject, or a date of the customer."""

    date: str | None = None
    customer_date: str | None = None
    period: PeriodSpec | None = None

    _parse_period = field_validator("period", mode="before")(_optional_period_spec)

    @model_validator(mode="after")
    def _one_basis(self) -> After:
        if (self.date is None) == (self.customer_date is None):
            raise ValueError(
                "set exactly one time basis: `date` (a date of the subject) or "
                "`customer_date` (a date in the customer's file, e.g. end_of_service)"
            )
        return self


class ApprovalPolicy(Model):
    """Whether a person must approve a rule's changes, and how many people.

    `required`: the rule never runs by itself; each run's eligible rows wait for
    `retention-worker approve` (Annex A.7: CPMLive's audit and workflow logs are deleted by
    hand only). `four_eyes`: an approval (of a flagged rule or of a tripped breaker) needs two
    different approvers. Written `approval: required` for short.
    """

    required: bool = False
    four_eyes: bool = False


def _approval(value: Any) -> Any:
    if value == "required":
        return {"required": True}
    if isinstance(value, str):
        raise ValueError(  # noqa: TRY004  (pydantic reports ValueError as a located problem)
            f"{value!r} is not an approval setting; write `approval: required` or "
            "`approval: {required: true, four_eyes: true}`"
        )
    return value


class Rule(Model):
    """When and what: single-stage (period + action) or phased (`stages`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: str = Field(pattern=_ID_RE, max_length=MAX_ID)
    subject: str
    after: After
    action: Action | None = None
    with_: dict[Identifier, Masking] = Field(default={}, alias="with")
    stages: tuple[Stage, ...] = ()
    floor: str | None = None
    approval: ApprovalPolicy = ApprovalPolicy()
    breaker: BreakerLimits | None = None
    # Conditions on the subject's rows this rule adds to the subject's own `where`.
    where: tuple[Condition, ...] = Field(default=(), max_length=20)
    # Rows of other tables deleted or anonymised with each row this rule anonymises.
    related: tuple[Related, ...] = Field(default=(), max_length=20)

    _parse_approval = field_validator("approval", mode="before")(_approval)

    _parse_masks = field_validator("with_", mode="before")(_mask_map)

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        """A single-stage rule becomes one unnamed stage, so later code sees one shape."""
        if not isinstance(data, dict):
            return data
        if "stages" in data:
            after = data.get("after")
            if "action" in data or "with" in data:
                raise ValueError("a phased rule sets `action` and `with` in each stage")
            if isinstance(after, dict) and "period" in after:
                raise ValueError("a phased rule sets `period` in each stage, not under `after`")
            return data
        after = data.get("after")
        if isinstance(after, dict) and "action" in data:
            stage: dict[str, Any] = {"period": after.get("period"), "action": data["action"]}
            if "with" in data:
                stage["with"] = data["with"]
            data = {**data, "stages": [stage]}
        return data

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if not self.stages:
            raise ValueError("a rule needs `action` (and `after.period`) or `stages`")
        if len(self.stages) > 1:
            if self.action is not None:
                raise ValueError("a phased rule sets `action` per stage, not on the rule")
            names = [s.stage for s in self.stages]
            if "" in names or len(set(names)) != len(names):
                raise ValueError("every stage of a phased rule needs its own `stage` name")
        return self

    def stage_id(self, stage: Stage) -> str:
        """The stable id audit events, metrics and approvals use for a stage."""
        return f"{self.id}.{stage.stage}" if stage.stage else self.id
