"""Configuration models: the catalogue (Annex A), product mappings and customer files.

Every model is frozen and rejects unknown fields. The scalar values and their bounds are in
`worker.config.values`; loading and the checks across files in `worker.config.load`. This
module only says what a valid file looks like; the models of a mapping's rules (`Rule`,
`Stage`, `After`, `Masking`, `Related`, …) are in `worker.config.rules`, re-exported here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from worker.breaker import BreakerLimits
from worker.config.base import Model
from worker.config.language import (
    Condition,
    DateSpec,
    FirstOf,
    date_spec,
)
from worker.config.rules import (
    Action,
    After,
    ApprovalPolicy,
    Masking,
    PeriodSpec,
    Related,
    Rule,
    SettingPeriod,
    Stage,
    Strategy,
    _approval,
)
from worker.config.rules import _masking as _masking  # re-exported: tests/unit/test_maskfit.py
from worker.config.values import (
    _ENV_RE,
    _ID_RE,
    MAX_ID,
    CustomerDate,
    Identifier,
    parse_period,
    short,
    tenant_value,
)
from worker.periods import Period, Unit

__all__ = [
    "MAX_ID",
    "Action",
    "After",
    "ApprovalPolicy",
    "Catalogue",
    "CatalogueProduct",
    "Category",
    "Customer",
    "CustomerProduct",
    "DatabaseRef",
    "Dependent",
    "Floor",
    "Kind",
    "Masking",
    "PeriodSpec",
    "ProductMapping",
    "ProductTimeouts",
    "Related",
    "Rule",
    "Schedule",
    "SettingPeriod",
    "Stage",
    "Strategy",
    "Subject",
    "Tenancy",
]


# --- catalogue.yaml ----------------------------------------------------------------


class Kind(Model):
    label: str


class Category(Model):
    label: str
    special: StrictBool = False


def _period(value: Any) -> Period:
    return parse_period(value)


class Floor(Model):
    period: Period
    applies_to: tuple[str, ...]
    reason: str

    _parse_period = field_validator("period", mode="before")(_period)


class CatalogueProduct(Model):
    label: str
    annex: str
    processes: dict[str, tuple[str, ...]]
    retention: str = ""
    backup_retention: Period = Period(14, Unit.DAYS)

    _parse_period = field_validator("backup_retention", mode="before")(_period)


class Catalogue(Model):
    kinds: dict[str, Kind]
    categories: dict[str, Category]
    floors: dict[str, Floor] = {}
    products: dict[str, CatalogueProduct]


# --- products/<product>.yaml ------------------------------------------------------------


class DatabaseRef(Model):
    """Where a database URL comes from: an environment variable (or VAR_FILE)."""

    url_env: str = Field(pattern=_ENV_RE, max_length=MAX_ID)


class Tenancy(Model):
    """Either a tenant column in a shared database, or one database per customer."""

    column: Identifier | None = None
    per_customer: StrictBool = False

    @model_validator(mode="after")
    def _one_shape(self) -> Tenancy:
        if (self.column is None) == (not self.per_customer):
            raise ValueError(
                "set exactly one of `column` (a shared database with a tenant column) "
                "or `per_customer: true` (one database per customer)"
            )
        return self


class Dependent(Model):
    """Rows of another table that belong to a subject row and go with it."""

    table: Identifier
    references: dict[Identifier, Identifier] = Field(min_length=1)
    columns: dict[Identifier, str] = {}
    dependents: tuple[Dependent, ...] = ()


class Subject(Model):
    """A table holding personal data of one kind of person.

    `key`: the columns that identify a row (a primary key or a unique index: `validate`
    proves it); `[]` for a table without one (a log), which delete rules can still clear in
    bounded batches. `dates`: the time bases rules start from (worker/config/language.py).
    `where`: conditions every rule of this subject adds.
    """

    kind: str
    table: Identifier
    key: tuple[Identifier, ...] = Field(max_length=8)
    columns: dict[Identifier, str] = {}
    dates: dict[str, DateSpec] = {}
    dependents: tuple[Dependent, ...] = ()
    where: tuple[Condition, ...] = Field(default=(), max_length=20)

    @field_validator("dates", mode="before")
    @classmethod
    def _dates(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: date_spec(v) for k, v in value.items()}
        return value

    def date_columns(self) -> tuple[str, ...]:
        """The subject's own columns its time bases read (for the schema check)."""
        found: list[str] = []
        for spec in self.dates.values():
            if isinstance(spec, str):
                found.append(spec)
            elif isinstance(spec, FirstOf):
                found += spec.first_of
        return tuple(dict.fromkeys(found))


class Schedule(Model):
    """When a customer × product runs: a crontab line in a time zone.

    Without a time zone, the line is read in the customer's own time zone.
    """

    cron: str = Field(default="0 2 * * *", max_length=200)
    timezone: str | None = Field(default=None, max_length=MAX_ID)


def _seconds(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(  # noqa: TRY004  (pydantic locates ValueError only)
            f"{short(value)} is not a number of seconds; write e.g. 0.5"
        )
    return value


class ProductTimeouts(Model):
    """Per product: the longest wait for a lock and the longest statement, in whole seconds.

    Unset, the process settings apply (RETENTION_LOCK_TIMEOUT_SECONDS, default 30;
    RETENTION_STATEMENT_TIMEOUT_SECONDS, default 600).
    """

    lock_seconds: int | None = Field(default=None, ge=1, le=3600)
    statement_seconds: int | None = Field(default=None, ge=1, le=86400)


class ProductMapping(Model):
    product: str = Field(max_length=MAX_ID)
    connector: str = "sql"
    database: DatabaseRef | None = None
    tenancy: Tenancy
    subjects: dict[str, Subject]
    rules: tuple[Rule, ...]
    schedule: Schedule = Schedule()
    batch_size: StrictInt = Field(default=500, ge=1, le=50_000)
    # Target seconds of one batch's transaction (its rows stay locked that long): when set,
    # the batch size is tuned from `batch_size` by measured time (worker/batchsize.py).
    batch_seconds: Annotated[float, BeforeValidator(_seconds)] | None = Field(
        default=None, gt=0.0, le=60.0
    )
    # Seconds to wait between batches, to spare a busy database; a stop cuts it short.
    batch_pause: Annotated[float, BeforeValidator(_seconds)] = Field(default=0.0, ge=0.0, le=60.0)
    # Blast-radius breaker limits for every rule of the product (worker/breaker.py).
    breaker: BreakerLimits | None = None
    # `approval: {four_eyes: true}` asks two approvers for every approval of the product.
    approval: ApprovalPolicy = ApprovalPolicy()

    _parse_approval = field_validator("approval", mode="before")(_approval)
    timeouts: ProductTimeouts = ProductTimeouts()

    @model_validator(mode="after")
    def _database_matches_tenancy(self) -> ProductMapping:
        if self.tenancy.per_customer and self.database is not None:
            raise ValueError(
                "with `tenancy: {per_customer: true}` each customer names its database; "
                "remove `database` here"
            )
        if not self.tenancy.per_customer and self.database is None:
            raise ValueError("a shared database needs `database: {url_env: VARIABLE}`")
        return self


# --- customers/<customer>.yaml -----------------------------------------------------------


class CustomerProduct(Model):
    """One product as a customer uses it: its tenant or database, its settings and dates.

    `tenant` is a whole number or a text, exactly as written (see
    `worker.config.values.tenant_value` for what is refused); `settings` are whole numbers in
    the unit of the rules that read them; `dates` are calendar days (YYYY-MM-DD).
    """

    tenant: Annotated[StrictInt | StrictStr | None, BeforeValidator(tenant_value)] = None
    database: DatabaseRef | None = None
    settings: dict[Annotated[str, Field(max_length=MAX_ID)], StrictInt] = {}
    dates: dict[Annotated[str, Field(max_length=MAX_ID)], CustomerDate] = {}
    schedule: Schedule | None = None
    # The customer's own breaker limits for this product's rules (override the mapping's).
    breaker: BreakerLimits | None = None


class Customer(Model):
    customer: str = Field(pattern=_ID_RE, max_length=MAX_ID)
    timezone: str = Field(default="Europe/Amsterdam", max_length=MAX_ID)
    products: dict[str, CustomerProduct]
