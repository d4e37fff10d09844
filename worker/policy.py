"""Which rules apply to a customer × product, with what period, and where the cutoff lies.

Pure: no I/O, and the time is always passed in. Precedence, strongest first: a legal hold
(checked by the run, worker/gate.py), then a legal floor, then the customer's setting, then
the mapping's default. Between two rules that touch the same column of a table, the longest
retention wins: a row is eligible for either only once it is past both cutoffs.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from worker.breaker import DEFAULT_LIMITS, Limits, resolve
from worker.config import (
    Action,
    Catalogue,
    Customer,
    CustomerProduct,
    Masking,
    ProductMapping,
    Rule,
    SettingPeriod,
    Stage,
    Subject,
)
from worker.config.language import DateSpec
from worker.config.models import Related
from worker.periods import Period, add_period, cutoff, local_today, start_of_day


class Source(enum.StrEnum):
    """Where an effective period came from."""

    FIXED = "fixed"  # written in the product mapping
    DEFAULT = "default"  # the mapping's default for a customer setting
    CUSTOMER = "customer"  # the customer's own setting
    FLOOR = "floor"  # a legal floor overruled a shorter period


@dataclass(frozen=True)
class EffectiveRule:
    """One stage of one rule as it applies to one customer × product."""

    id: str
    rule: Rule
    stage: Stage
    subject_name: str
    subject: Subject
    period: Period
    source: Source
    floors: tuple[str, ...]
    # A time basis of the subject (a column, the first of several, a related table's
    # aggregate: worker/config/language.py), or a date from the customer's file.
    basis: DateSpec | None
    customer_date: str | None
    customer_date_value: dt.date | None
    # The blast-radius breaker's limits (defaults < product < rule < customer).
    limits: Limits = DEFAULT_LIMITS
    # A person approves every run of this rule (`approval: required`).
    approval_required: bool = False
    # Distinct approvers an approval of this rule needs: 2 with four-eyes.
    approvers_needed: int = 1
    # Ids of other rules' stages on the same table that touch a column this one touches: a
    # row must be past their cutoffs too (the longest retention wins).
    overlaps: tuple[str, ...] = ()

    @property
    def action(self) -> Action:
        return self.stage.action

    @property
    def categories(self) -> set[str]:
        """The categories of personal data this stage changes (related rows included)."""
        return categories_touched(self.stage, self.subject, self.rule.related)

    @property
    def masks(self) -> tuple[tuple[str, Masking], ...]:
        return tuple(sorted(self.stage.with_.items()))


def effective_rules(
    catalogue: Catalogue, customer: Customer, mapping: ProductMapping
) -> tuple[EffectiveRule, ...]:
    chosen = customer.products[mapping.product]
    found: list[EffectiveRule] = []
    for rule in mapping.rules:
        subject = mapping.subjects[rule.subject]
        for stage in rule.stages:
            period, source = _resolve(stage, chosen)
            floors = applicable_floors(rule, stage, subject, catalogue)
            for name in floors:
                floor = catalogue.floors[name].period
                if not period.at_least(floor):
                    period, source = floor, Source.FLOOR
            date_name = rule.after.customer_date
            found.append(
                EffectiveRule(
                    id=rule.stage_id(stage),
                    rule=rule,
                    stage=stage,
                    subject_name=rule.subject,
                    subject=subject,
                    period=period,
                    source=source,
                    floors=tuple(floors),
                    basis=subject.dates[rule.after.date] if rule.after.date else None,
                    customer_date=date_name,
                    customer_date_value=chosen.dates.get(date_name) if date_name else None,
                    limits=resolve(mapping.breaker, rule.breaker, chosen.breaker),
                    approval_required=rule.approval.required,
                    approvers_needed=2
                    if rule.approval.four_eyes or mapping.approval.four_eyes
                    else 1,
                )
            )
    return tuple(
        replace(rule, overlaps=tuple(o.id for o in found if _overlap(rule, o))) for rule in found
    )


def _overlap(one: EffectiveRule, other: EffectiveRule) -> bool:
    """Two stages of different rules that touch a column in common on the same table.

    A delete or unlink touches every column; an anonymise the columns it masks. Stages of
    one phased rule never overlap: their order is the design (mask first, delete later).
    """
    if one.rule.id == other.rule.id or one.subject.table != other.subject.table:
        return False
    mine, theirs = _columns(one), _columns(other)
    return mine is None or theirs is None or bool(mine & theirs)


def _columns(rule: EffectiveRule) -> set[str] | None:
    """The columns a stage changes; None for every column (delete, unlink)."""
    return set(rule.stage.with_) if rule.action is Action.ANONYMISE else None


def _resolve(stage: Stage, chosen: CustomerProduct) -> tuple[Period, Source]:
    spec = stage.period
    if isinstance(spec, Period):
        return spec, Source.FIXED
    assert isinstance(spec, SettingPeriod)  # noqa: S101  (narrowing for the type checker)
    if spec.setting in chosen.settings:
        return Period(chosen.settings[spec.setting], spec.unit), Source.CUSTOMER
    return Period(spec.default, spec.unit), Source.DEFAULT


@dataclass(frozen=True)
class Cutoff:
    """Where a rule's cutoff lies at one instant, for one customer's time zone.

    Rows whose basis date is before `date` (or, for timestamps, before `instant`) are
    expired. For a customer-date basis, `everything` says whether all rows are expired.
    """

    today: dt.date
    date: dt.date
    instant: dt.datetime
    everything: bool | None = None


def rule_cutoff(rule: EffectiveRule, now: dt.datetime, timezone: str) -> Cutoff:
    """The cutoff of `rule` at the instant `now`, for a customer in `timezone`."""
    tz = ZoneInfo(timezone)
    today = local_today(now, tz)
    return cutoff_on(rule, today, cutoff(today, rule.period), timezone)


def cutoff_on(rule: EffectiveRule, today: dt.date, day: dt.date, timezone: str) -> Cutoff:
    """A cutoff at the given `day` (an approval's, which may be earlier than today's)."""
    tz = ZoneInfo(timezone)
    everything: bool | None = None
    if rule.customer_date is not None:
        value = rule.customer_date_value
        everything = value is not None and value < day
    return Cutoff(today=today, date=day, instant=start_of_day(day, tz), everything=everything)


def overdue_seconds(
    oldest_basis: dt.date | dt.datetime | None,
    period: Period,
    now: dt.datetime,
    timezone: str,
) -> float:
    """How long the oldest eligible record has been past its deadline (0 when none is).

    A record is due from the start of the day after its period ends, in the customer's
    time zone; the lag counts from that instant.
    """
    if oldest_basis is None:
        return 0.0
    tz = ZoneInfo(timezone)
    if isinstance(oldest_basis, dt.datetime):
        aware = oldest_basis if oldest_basis.tzinfo else oldest_basis.replace(tzinfo=dt.UTC)
        basis_day = aware.astimezone(tz).date()
    else:
        basis_day = oldest_basis
    due = start_of_day(add_period(basis_day, period) + dt.timedelta(days=1), tz)
    return max(0.0, (now - due).total_seconds())


def categories_touched(stage: Stage, subject: Subject, related: Sequence[Related] = ()) -> set[str]:
    """The categories a stage changes: anonymise its columns (and the related rows it deletes
    or anonymises with them), delete everything."""
    if stage.action is Action.ANONYMISE:
        found = {subject.columns[c] for c in stage.with_ if c in subject.columns}
        for rel in related:
            if rel.action.value == "delete":
                found.update(rel.columns.values())
            else:
                found.update(rel.columns[c] for c in rel.with_ if c in rel.columns)
        return found
    found = set(subject.columns.values())
    pending = list(subject.dependents)
    while pending:
        dep = pending.pop()
        found.update(dep.columns.values())
        pending.extend(dep.dependents)
    return found


def applicable_floors(rule: Rule, stage: Stage, subject: Subject, cat: Catalogue) -> list[str]:
    """Floors that bind a stage: named on the rule, or covering a category it touches."""
    touched = categories_touched(stage, subject, rule.related)
    names = [n for n, f in cat.floors.items() if touched & set(f.applies_to)]
    if rule.floor is not None and rule.floor in cat.floors and rule.floor not in names:
        names.append(rule.floor)
    return sorted(names)
