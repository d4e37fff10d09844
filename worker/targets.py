"""Translate a product mapping and an effective rule into the connector's terms."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from connectors.base import Basis, ColumnMask, Dependent, Mask, Table, Target
from connectors.tenancy import reference_problems
from worker.config import CustomerProduct, Masking, ProductMapping, Subject
from worker.config import Dependent as DependentConfig
from worker.policy import Cutoff, EffectiveRule, rule_cutoff


def _dependent(dep: DependentConfig) -> Dependent:
    return Dependent(
        table=dep.table,
        references=tuple(sorted(dep.references.items())),
        columns=tuple(dep.columns),
        dependents=tuple(_dependent(d) for d in dep.dependents),
    )


def column_mask(column: str, masking: Masking) -> ColumnMask:
    """The connector's form of one `with` entry of a rule."""
    return ColumnMask(column, Mask(masking.strategy.value), masking.text, masking.length)


def table_for(subject: Subject, mapping: ProductMapping) -> Table:
    return Table(
        name=subject.table,
        key=subject.key,
        columns=tuple(subject.columns),
        dates=tuple(subject.dates.values()),
        tenant_column=mapping.tenancy.column,
        dependents=tuple(_dependent(d) for d in subject.dependents),
    )


def tables_for(mapping: ProductMapping) -> list[Table]:
    """Every table the mapping expects, for `Connector.verify`."""
    return [table_for(s, mapping) for s in mapping.subjects.values()]


def tenant_reference_problems(
    mapping: ProductMapping,
) -> list[tuple[tuple[str | int, ...], str]]:
    """Offline: dependents whose `references` leave out the tenant column that their
    subject's key holds, as (path in the product mapping, message with the fix).

    Needs no database: the key, the references and the tenant column are all in the
    mapping. (Live, `Connector.verify` also checks nested dependents, whose parent's key is
    the parent table's primary key.)
    """
    found: list[tuple[tuple[str | int, ...], str]] = []
    for name, subject in mapping.subjects.items():
        for problem in reference_problems(table_for(subject, mapping)):
            for i, dep in enumerate(subject.dependents):
                if dep.table == problem.table:
                    found.append(
                        (("subjects", name, "dependents", i, "references"), problem.message)
                    )
                    break
    return found


def target_for(
    rule: EffectiveRule,
    mapping: ProductMapping,
    chosen: CustomerProduct,
    cutoff: Cutoff,
    also: tuple[Basis, ...] = (),
) -> Target:
    """The connector's target of a rule at a cutoff; `also` the cutoffs of overlapping rules
    (the longest retention wins), from `overlapping`."""
    return Target(
        table=table_for(rule.subject, mapping),
        tenant=chosen.tenant if mapping.tenancy.column else None,
        basis=rule.basis_column,
        cutoff_date=cutoff.date,
        cutoff_instant=cutoff.instant,
        everything=bool(cutoff.everything),
        masks=tuple(column_mask(column, m) for column, m in rule.masks),
        also=also,
    )


def overlapping(
    rule: EffectiveRule,
    rules: Mapping[str, EffectiveRule],
    now: dt.datetime,
    timezone: str,
) -> tuple[Basis, ...]:
    """The bases and cutoffs at `now` of the rules that overlap `rule` (policy.overlaps)."""
    found = []
    for ident in rule.overlaps:
        other = rules[ident]
        cutoff = rule_cutoff(other, now, timezone)
        found.append(
            Basis(other.basis_column, cutoff.date, cutoff.instant, bool(cutoff.everything))
        )
    return tuple(found)
