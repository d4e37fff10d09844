"""Checks across configuration files: each mapping against the catalogue (Annex A), and each
customer against the mappings. Customers against each other: `worker.config.unique`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.config.files import Doc, Problems
from worker.config.language_checks import check_language
from worker.config.models import (
    Catalogue,
    Customer,
    Dependent,
    ProductMapping,
    Rule,
    SettingPeriod,
    Stage,
)
from worker.config.values import short
from worker.cron import cron_trigger
from worker.periods import Period
from worker.policy import applicable_floors
from worker.targets import tenant_reference_problems


def check_catalogue(cat: Catalogue, doc: Doc, problems: Problems) -> None:
    add = partial(problems.at, doc)

    for pname, product in cat.products.items():
        for kind, categories in product.processes.items():
            path = ("products", pname, "processes", kind)
            if kind not in cat.kinds:
                add(
                    path, f"unknown kind of person {short(kind)}; use one of {', '.join(cat.kinds)}"
                )
            for category in categories:
                if category not in cat.categories:
                    add(path, _unknown_category(category, cat))
    for fname, floor in cat.floors.items():
        for category in floor.applies_to:
            if category not in cat.categories:
                add(("floors", fname, "applies_to"), _unknown_category(category, cat))


def _unknown_category(category: str, cat: Catalogue) -> str:
    return (
        f"unknown category {short(category)}; use one of {', '.join(cat.categories)} "
        "(or add it to catalogue.yaml)"
    )


def check_product(
    mapping: ProductMapping,
    doc: Doc,
    cat: Catalogue,
    rule_owner: dict[str, Path],
    problems: Problems,
) -> None:
    add = partial(problems.at, doc)

    if mapping.product != doc.file.stem:
        add(
            ("product",),
            f"the product is named {short(mapping.product)} but the file is "
            f"{doc.file.name}; make them the same",
        )
    entry = cat.products.get(mapping.product)
    if entry is None:
        add(
            ("product",),
            f"unknown product {short(mapping.product)}: catalogue.yaml does not list "
            f"it; use one of {', '.join(cat.products)} or add it to the catalogue",
        )
        return
    _check_schedule(mapping.schedule.cron, mapping.schedule.timezone, ("schedule",), add)
    for path, message in tenant_reference_problems(mapping):
        add(path, message)
    for sname, subject in mapping.subjects.items():
        base: tuple[str | int, ...] = ("subjects", sname)
        if subject.kind not in cat.kinds:
            add(
                (*base, "kind"),
                f"unknown kind of person {short(subject.kind)}; use one of {', '.join(cat.kinds)}",
            )
            continue
        allowed = set(entry.processes.get(subject.kind, ()))
        _check_columns(
            subject.columns, allowed, subject.kind, entry.label, (*base, "columns"), cat, add
        )
        for i, dep in enumerate(subject.dependents):
            _check_dependent(
                dep, allowed, subject.kind, entry.label, (*base, "dependents", i), cat, add
            )
    check_language(mapping, cat, entry, add)
    for i, rule in enumerate(mapping.rules):
        _check_rule(rule, mapping, cat, ("rules", i), add)
        if rule.id in rule_owner:
            add(
                ("rules", i, "id"),
                f"rule id {rule.id!r} is also used in "
                f"{rule_owner[rule.id].name}; every rule needs its own id",
            )
        rule_owner[rule.id] = doc.file


def _check_columns(
    columns: Mapping[str, str],
    allowed: set[str],
    kind: str,
    label: str,
    path: tuple[str | int, ...],
    cat: Catalogue,
    add: Any,
) -> None:
    for column, category in columns.items():
        if category not in cat.categories:
            add((*path, column), _unknown_category(category, cat))
        elif category not in allowed:
            add(
                (*path, column),
                f"Annex A does not list {short(category)} for {short(kind)} in {label}: "
                "processing outside the agreement; remove the column or correct the category",
            )


def _check_dependent(
    dep: Dependent,
    allowed: set[str],
    kind: str,
    label: str,
    path: tuple[str | int, ...],
    cat: Catalogue,
    add: Any,
) -> None:
    _check_columns(dep.columns, allowed, kind, label, (*path, "columns"), cat, add)
    for i, sub in enumerate(dep.dependents):
        _check_dependent(sub, allowed, kind, label, (*path, "dependents", i), cat, add)


def _check_rule(
    rule: Rule, mapping: ProductMapping, cat: Catalogue, path: tuple[str | int, ...], add: Any
) -> None:
    subject = mapping.subjects.get(rule.subject)
    if subject is None:
        add(
            (*path, "subject"),
            f"unknown subject {short(rule.subject)}; use one of {', '.join(mapping.subjects)}",
        )
        return
    if rule.after.date is not None and rule.after.date not in subject.dates:
        add(
            (*path, "after", "date"),
            f"subject {short(rule.subject)} has no date "
            f"{short(rule.after.date)}; use one of "
            f"{', '.join(subject.dates) or '(none: add dates)'}",
        )
    if rule.floor is not None and rule.floor not in cat.floors:
        add(
            (*path, "floor"),
            f"unknown floor {short(rule.floor)}; use one of {', '.join(cat.floors)}",
        )
    previous: Period | None = None
    for i, stage in enumerate(rule.stages):
        spath = (*path, "stages", i) if len(rule.stages) > 1 else path
        for column in stage.with_:
            if column not in subject.columns:
                add(
                    (*spath, "with", column),
                    f"column {short(column)} is not mapped in subject "
                    f"{short(rule.subject)}; map it under `columns` first",
                )
        for fname in applicable_floors(rule, stage, subject, cat):
            floor = cat.floors[fname]
            if isinstance(stage.period, Period) and not stage.period.at_least(floor.period):
                add(
                    (*spath, "period"),
                    f"{stage.period} is below the legal floor {fname!r} "
                    f"({floor.period}, {floor.reason}); set at least {floor.period}",
                )
            if isinstance(stage.period, SettingPeriod):
                low = Period(stage.period.default, stage.period.unit)
                if not low.at_least(floor.period):
                    add(
                        (*spath, "period", "default"),
                        f"default {low} is below the legal "
                        f"floor {fname!r} ({floor.period}); set a default of at least "
                        f"{floor.period}",
                    )
        if isinstance(stage.period, Period):
            if previous is not None and not stage.period.at_least(previous):
                add(
                    (*spath, "period"),
                    "stages must come in order: this stage's period is shorter than the one before",
                )
            previous = stage.period


def _check_schedule(cron: str, timezone: str | None, path: tuple[str | int, ...], add: Any) -> None:
    timezone = timezone or "UTC"  # no zone of its own: the customer's, checked on its own
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        add(
            (*path, "timezone"),
            f"unknown time zone {short(timezone)}; use an IANA name such as Europe/Amsterdam",
        )
        return
    try:
        cron_trigger(cron, timezone)
    except ValueError as exc:
        add(
            (*path, "cron"),
            f"{short(cron)} is not a crontab line ({str(exc)[:120]}); write five fields "
            "(minute hour day month weekday), e.g. '0 2 * * *' for daily at 02:00, or six "
            "with seconds first",
        )


def check_customer(
    customer: Customer,
    doc: Doc,
    cat: Catalogue,
    products: Mapping[str, ProductMapping],
    problems: Problems,
    set_aside: set[str],
) -> None:
    add = partial(problems.at, doc)

    if customer.customer != doc.file.stem:
        add(
            ("customer",),
            f"the customer is named {short(customer.customer)} but the file is "
            f"{doc.file.name}; make them the same",
        )
    try:
        ZoneInfo(customer.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        add(
            ("timezone",),
            f"unknown time zone {short(customer.timezone)}; use an IANA name such as "
            "Europe/Amsterdam",
        )
    for pname, chosen in customer.products.items():
        base: tuple[str | int, ...] = ("products", pname)
        mapping = products.get(pname)
        if mapping is None and pname in set_aside:
            # Its own file's problems are reported; this customer's other products still run.
            continue
        if mapping is None:
            known = ", ".join(sorted(products)) or "(none)"
            add(base, f"unknown product {short(pname)}; this configuration maps {known}")
            continue
        shared = {m.database.url_env: n for n, m in products.items() if m.database is not None}
        if chosen.database is not None and chosen.database.url_env in shared:
            add(
                (*base, "database", "url_env"),
                f"{chosen.database.url_env} is the shared database of "
                f"{shared[chosen.database.url_env]}; name this customer's own variable",
            )
        if mapping.tenancy.per_customer:
            if chosen.database is None:
                add(
                    (*base, "database"),
                    f"{pname} keeps one database per customer: add "
                    "`database: {url_env: VARIABLE}` naming the variable with its URL",
                )
            if chosen.tenant is not None:
                add(
                    (*base, "tenant"),
                    f"{pname} has no tenant column (one database per customer); remove `tenant`",
                )
        else:
            if chosen.tenant is None:
                add(
                    (*base, "tenant"),
                    f"{pname} shares one database between customers: add "
                    f"`tenant:` with this customer's value of {mapping.tenancy.column}",
                )
            if chosen.database is not None:
                add((*base, "database"), f"{pname} uses one shared database; remove `database`")
        if chosen.schedule is not None:
            _check_schedule(
                chosen.schedule.cron, chosen.schedule.timezone, (*base, "schedule"), add
            )
        _check_settings(chosen.settings, chosen.dates, mapping, cat, base, add)


def _check_settings(
    settings: Mapping[str, int],
    dates: Mapping[str, dt.date],
    mapping: ProductMapping,
    cat: Catalogue,
    base: tuple[str | int, ...],
    add: Any,
) -> None:
    uses: dict[str, list[tuple[Rule, Stage]]] = {}
    date_names: set[str] = set()
    for rule in mapping.rules:
        if rule.after.customer_date:
            date_names.add(rule.after.customer_date)
        for stage in rule.stages:
            if isinstance(stage.period, SettingPeriod):
                uses.setdefault(stage.period.setting, []).append((rule, stage))
    for name, value in settings.items():
        path = (*base, "settings", name)
        if name not in uses:
            add(
                path,
                f"unknown setting {short(name)}; {mapping.product} rules read "
                f"{', '.join(sorted(uses)) or 'no settings'}",
            )
            continue
        for rule, stage in uses[name]:
            spec = stage.period
            assert isinstance(spec, SettingPeriod)  # noqa: S101  (narrowing, not validation)
            if value < spec.min:
                add(
                    path,
                    f"{value} {spec.unit} is below the minimum of {spec.min} for rule "
                    f"{rule.stage_id(stage)}; set a whole number from {spec.min} to {spec.upper}",
                )
                break
            if value > spec.upper:
                add(
                    path,
                    f"{value} {spec.unit} is more than the maximum of {spec.upper} for rule "
                    f"{rule.stage_id(stage)}: an absurd period is taken for a typo; set a whole "
                    f"number from {spec.min} to {spec.upper}",
                )
                break
            subject = mapping.subjects[rule.subject]
            chosen = Period(value, spec.unit)
            for fname in applicable_floors(rule, stage, subject, cat):
                floor = cat.floors[fname]
                if not chosen.at_least(floor.period):
                    add(
                        path,
                        f"{value} {spec.unit} is below the legal floor {fname!r} "
                        f"({floor.period}, {floor.reason}) for rule {rule.stage_id(stage)}; "
                        f"set at least {_in_unit(floor.period, spec.unit)}",
                    )
    for name in dates:
        if name not in date_names:
            add(
                (*base, "dates", name),
                f"unknown date {short(name)}; {mapping.product} rules read "
                f"{', '.join(sorted(date_names)) or 'no customer dates'}",
            )
    _check_stage_order(settings, mapping, base, add)


def _check_stage_order(
    settings: Mapping[str, int], mapping: ProductMapping, base: tuple[str | int, ...], add: Any
) -> None:
    """With this customer's settings, each stage of a phased rule comes after the one before."""
    for rule in mapping.rules:
        previous: tuple[Stage, Period] | None = None
        for stage in rule.stages:
            spec = stage.period
            if isinstance(spec, SettingPeriod):
                value = settings.get(spec.setting, spec.default)
                if not spec.min <= value <= spec.upper:
                    break  # already reported as out of range
                period = Period(value, spec.unit)
            else:
                period = spec
            if previous is not None and not period.at_least(previous[1]):
                earlier, shorter = previous
                names = [
                    s.period.setting
                    for s in (stage, earlier)
                    if isinstance(s.period, SettingPeriod)
                ]
                path = (*base, "settings", names[0]) if names else base
                add(
                    path,
                    f"stage {stage.stage!r} of rule {rule.id} would come at {period}, before "
                    f"stage {earlier.stage!r} at {shorter}; stages must come in order: set "
                    "a longer period for the later stage",
                )
            previous = (stage, period)


def _in_unit(period: Period, unit: Any) -> str:
    if str(unit) == "months" and period.unit.value == "years":
        return f"{period.amount * 12} months"
    return str(period)
