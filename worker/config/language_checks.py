"""Offline checks of the mapping language (worker/config/language.py) in a product mapping.

What the live schema must confirm (columns exist, types fit, keys are unique) is checked by
`validate` against the database; here, what the files alone can tell:

- a time basis falling back (`if_none`) on another date names a plain column date;
- a table without a key (`key: []`) can only be cleared by delete rules, and has no
  dependents: nothing can point at a row that has no key;
- `related` rows belong to a rule that anonymises (a delete removes the subject's
  `dependents`), live in another table than the subject's (the subject's own columns are
  anonymised by the rule's `with`), their columns are categories Annex A lists for the
  subject's kind, and their `with` masks only mapped columns.
"""

from __future__ import annotations

from typing import Any

from worker.config.language import Aggregate
from worker.config.models import Action, Catalogue, CatalogueProduct, ProductMapping, Rule
from worker.config.values import short


def check_language(
    mapping: ProductMapping, cat: Catalogue, entry: CatalogueProduct, add: Any
) -> None:
    """Report each problem through `add(path, message)`."""
    for sname, subject in mapping.subjects.items():
        base: tuple[str | int, ...] = ("subjects", sname)
        for date_name, spec in subject.dates.items():
            if not isinstance(spec, Aggregate) or spec.if_none == "keep":
                continue
            fallback = subject.dates.get(spec.if_none)
            if not isinstance(fallback, str):
                plain = [n for n, s in subject.dates.items() if isinstance(s, str)]
                add(
                    (*base, "dates", date_name, "if_none"),
                    f"if_none is `keep` or the name of another date of {short(sname)} that is "
                    f"one column; use one of keep, {', '.join(plain) or '(none)'}",
                )
        if not subject.key and subject.dependents:
            add(
                (*base, "dependents"),
                "a table without a key cannot have dependents: nothing can point at its rows; "
                "give the subject its key, or map the dependents as subjects of their own",
            )
    for i, rule in enumerate(mapping.rules):
        owner = mapping.subjects.get(rule.subject)
        if owner is None:
            continue  # reported with the rule
        path: tuple[str | int, ...] = ("rules", i)
        if not owner.key:
            for stage in rule.stages:
                if stage.action is not Action.DELETE:
                    add(
                        (*path, "subject"),
                        f"{short(rule.subject)} has no key (`key: []`): only a delete can clear "
                        f"such a table, not {stage.action}; map a key that a unique index "
                        "proves, or delete",
                    )
                    break
        _check_related(rule, path, owner.kind, owner.table, entry, cat, add)


def _check_related(
    rule: Rule,
    path: tuple[str | int, ...],
    kind: str,
    table: str,
    entry: CatalogueProduct,
    cat: Catalogue,
    add: Any,
) -> None:
    if not rule.related:
        return
    if any(stage.action is not Action.ANONYMISE for stage in rule.stages):
        add(
            (*path, "related"),
            "related rows go with a rule that anonymises; a delete removes the rows of the "
            "subject's `dependents` instead: map them there",
        )
        return
    allowed = set(entry.processes.get(kind, ()))
    for j, related in enumerate(rule.related):
        where = (*path, "related", j)
        if related.table == table:
            add(
                (*where, "table"),
                f"related rows live in another table than the subject's own ({table}): the "
                "rule's `with` anonymises the subject's columns; move these masks there, or name "
                "the other table",
            )
        for column, category in related.columns.items():
            if category not in cat.categories:
                add((*where, "columns", column), f"unknown category {short(category)}")
            elif category not in allowed:
                add(
                    (*where, "columns", column),
                    f"Annex A does not list {category!r} for {kind!r} in {entry.label}: "
                    "processing outside the agreement; remove the column or correct the category",
                )
        for column in related.with_:
            if column not in related.columns:
                add(
                    (*where, "with", column),
                    f"column {short(column)} of {related.table} is not mapped; list it under "
                    "this related table's `columns` with its category first",
                )
