"""Translate a product mapping and an effective rule into the connector's terms."""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.base import (
    Aggregated,
    Basis,
    BasisSpec,
    Change,
    ColumnMask,
    Condition,
    Dependent,
    FirstOf,
    Mask,
    Op,
    Problem,
    RelatedRows,
    Table,
    Target,
)
from connectors.tenantlinks import reference_problems
from worker.config import Action, CustomerProduct, Masking, ProductMapping, Subject
from worker.config import Dependent as DependentConfig
from worker.config.language import Aggregate, DateSpec
from worker.config.language import Condition as ConditionConfig
from worker.config.language import FirstOf as FirstOfConfig
from worker.config.models import Related
from worker.policy import Cutoff, EffectiveRule, rule_cutoff


def _dependent(dep: DependentConfig) -> Dependent:
    return Dependent(
        table=dep.table,
        references=tuple(sorted(dep.references.items())),
        columns=tuple(dep.columns),
        dependents=tuple(_dependent(d) for d in dep.dependents),
    )


def basis_spec(spec: DateSpec, subject: Subject) -> BasisSpec:
    """A time basis of the mapping in the connector's terms."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, FirstOfConfig):
        return FirstOf(spec.first_of)
    assert isinstance(spec, Aggregate)  # noqa: S101  (narrowing for the type checker)
    fallback = subject.dates.get(spec.if_none) if spec.if_none != "keep" else None
    return Aggregated(
        table=spec.from_.table,
        references=tuple(sorted(spec.from_.references.items())),
        column=spec.column,
        latest=spec.latest is not None,
        if_none=fallback if isinstance(fallback, str) else None,
    )


def condition(cond: ConditionConfig) -> Condition:
    """A row condition of the mapping in the connector's terms."""
    operator = cond.operator.value
    if operator == "is_null":
        return Condition(cond.column, Op.IS_NULL if cond.value else Op.NOT_NULL)
    return Condition(cond.column, Op(operator), cond.value)


def column_mask(column: str, masking: Masking) -> ColumnMask:
    """The connector's form of one `with` entry of a rule."""
    return ColumnMask(column, Mask(masking.strategy.value), masking.text, masking.length)


def intent_masks(masks: Sequence[ColumnMask]) -> dict[str, dict[str, Any]]:
    """Masks as a batch intent records them: column → {"mask", "text"?, "length"?}."""
    out: dict[str, dict[str, Any]] = {}
    for m in masks:
        entry: dict[str, Any] = {"mask": str(m.mask)}
        if m.text is not None:
            entry["text"] = m.text
        if m.length is not None:
            entry["length"] = m.length
        out[m.column] = entry
    return out


def masks_of_intent(recorded: Mapping[str, Mapping[str, Any]]) -> tuple[ColumnMask, ...]:
    """The masks an intent recorded (intent_masks), back in the connector's terms."""
    return tuple(
        ColumnMask(column, Mask(m["mask"]), m.get("text"), m.get("length"))
        for column, m in sorted(recorded.items())
    )


def _masks(masks: dict[str, Masking]) -> tuple[ColumnMask, ...]:
    return tuple(column_mask(column, m) for column, m in sorted(masks.items()))


def related_rows(related: Related) -> RelatedRows:
    """Related rows of an anonymise rule in the connector's terms."""
    return RelatedRows(
        table=related.table,
        references=tuple(sorted(related.references.items())),
        change=Change(related.action.value),
        masks=_masks(related.with_),
    )


# Per mapping object: subject id → (the subject, its Table). Configuration models are frozen,
# so the same objects always give the same Table; an entry goes with its mapping.
_TABLES: dict[int, tuple[weakref.ref[ProductMapping], dict[int, tuple[Subject, Table]]]] = {}


def table_for(subject: Subject, mapping: ProductMapping) -> Table:
    """What the mapping expects of a subject's table (for `Connector.verify`): its columns,
    its time bases (related tables too), the columns its conditions test, related tables.

    Built once per mapping and subject object and kept while the mapping lives (a run asks
    for it for every rule and customer: 17 times per FlexKids pair)."""
    key = id(mapping)
    held = _TABLES.get(key)
    if held is None or held[0]() is not mapping:
        gone = weakref.ref(mapping, lambda _: _TABLES.pop(key, None))
        held = _TABLES[key] = (gone, {})
    found = held[1].get(id(subject))
    if found is None or found[0] is not subject:  # the subject is kept: its id stays its own
        found = held[1][id(subject)] = (subject, _table_for(subject, mapping))
    return found[1]


def _table_for(subject: Subject, mapping: ProductMapping) -> Table:
    rules = [r for r in mapping.rules if mapping.subjects.get(r.subject) is subject]
    bases = tuple(
        b
        for b in (basis_spec(d, subject) for d in subject.dates.values())
        if isinstance(b, Aggregated)
    )
    conditions = [condition(c) for c in (*subject.where, *(c for r in rules for c in r.where))]
    return Table(
        name=subject.table,
        key=subject.key,
        columns=tuple(subject.columns),
        dates=subject.date_columns(),
        tenant_column=mapping.tenancy.column,
        dependents=tuple(_dependent(d) for d in subject.dependents),
        bases=bases,
        conditions=tuple(dict.fromkeys(conditions)),
        related=tuple(related_rows(rel) for r in rules for rel in r.related),
    )


def tables_for(mapping: ProductMapping) -> list[Table]:
    """Every table the mapping expects, for `Connector.verify`."""
    return [table_for(s, mapping) for s in mapping.subjects.values()]


def tenant_reference_problems(
    mapping: ProductMapping,
) -> list[tuple[tuple[str | int, ...], str]]:
    """Offline: links (dependents, related rows, related time bases) whose `references` leave
    out the tenant column that their subject's key holds, as (path in the product mapping,
    message with the fix).

    Needs no database: the key, the references and the tenant column are all in the
    mapping. (Live, `Connector.verify` also checks nested dependents, whose parent's key is
    the parent table's primary key, and links to tables without the tenant column:
    connectors/tenantlinks.py.)
    """
    found: list[tuple[tuple[str | int, ...], str]] = []
    for name, subject in mapping.subjects.items():
        for problem in reference_problems(table_for(subject, mapping)):
            path = link_path(name, subject, mapping, problem)
            if path is not None:
                found.append((path, problem.message))
    return found


Path = tuple[str | int, ...]


def link_path(
    name: str, subject: Subject, mapping: ProductMapping, problem: Problem
) -> Path | None:
    """Where the product mapping writes the references of the link `problem` is about (its
    `part`: a dependent at any depth, a rule's related rows, a related time basis), or the
    row condition (`part` "where") on the problem's column."""
    base: Path = ("subjects", name)
    if problem.part == "related":
        for i, rule in enumerate(mapping.rules):
            if mapping.subjects.get(rule.subject) is not subject:
                continue
            for j, rel in enumerate(rule.related):
                if rel.table == problem.table:
                    return ("rules", i, "related", j, "references")
    elif problem.part == "where":  # a row condition on the subject's column
        for k, cond in enumerate(subject.where):
            if cond.column == problem.column:
                return (*base, "where", k)
        for i, rule in enumerate(mapping.rules):
            if mapping.subjects.get(rule.subject) is not subject:
                continue
            for k, cond in enumerate(rule.where):
                if cond.column == problem.column:
                    return ("rules", i, "where", k)
    elif problem.part == "from":
        for date_name, spec in subject.dates.items():
            if isinstance(spec, Aggregate) and spec.from_.table == problem.table:
                return (*base, "dates", date_name, "from", "references")
    elif problem.part is not None:
        found = dependent_path(subject.dependents, problem.table, (*base, "dependents"))
        if found is not None:
            return (*found[1], problem.part)
    return None


def dependent_path(
    dependents: Sequence[DependentConfig], table: str, base: Path
) -> tuple[DependentConfig, Path] | None:
    """The dependent (at any depth) on `table`, and its path in the mapping."""
    for i, dep in enumerate(dependents):
        here: Path = (*base, i)
        if dep.table == table:
            return dep, here
        deeper = dependent_path(dep.dependents, table, (*here, "dependents"))
        if deeper is not None:
            return deeper
    return None


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
        basis=basis_spec(rule.basis, rule.subject) if rule.basis is not None else None,
        cutoff_date=cutoff.date,
        cutoff_instant=cutoff.instant,
        everything=bool(cutoff.everything),
        masks=_masks(dict(rule.masks)),
        also=also,
        where=tuple(condition(c) for c in (*rule.subject.where, *rule.rule.where)),
        related=(
            tuple(related_rows(r) for r in rule.rule.related)
            if rule.action is Action.ANONYMISE
            else ()
        ),
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
        spec = basis_spec(other.basis, other.subject) if other.basis is not None else None
        found.append(Basis(spec, cutoff.date, cutoff.instant, bool(cutoff.everything)))
    return tuple(found)
