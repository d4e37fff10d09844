"""Load the three kinds of configuration file and check them against each other.

Every problem names the file, the path inside it (with its line where known) and what to
fix. A problem in one customer's file sets that customer aside; a problem in a product
mapping sets that product aside; the rest of the configuration stays usable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ValidationError

from worker.config import (
    Action,
    Catalogue,
    Customer,
    Dependent,
    ProductMapping,
    Rule,
    SettingPeriod,
    Stage,
    Subject,
)
from worker.cron import cron_trigger
from worker.errors import ConfigError, ConfigProblem
from worker.periods import Period

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Config:
    """The loaded configuration: what is valid, and what was set aside and why."""

    directory: Path
    catalogue: Catalogue
    products: Mapping[str, ProductMapping]
    customers: Mapping[str, Customer]
    problems: tuple[ConfigProblem, ...] = ()

    def pairs(self) -> Iterator[tuple[Customer, ProductMapping]]:
        """Every runnable customer × product, in a stable order."""
        for name in sorted(self.customers):
            customer = self.customers[name]
            for product in sorted(customer.products):
                if product in self.products:
                    yield customer, self.products[product]

    def raise_for_problems(self) -> None:
        if self.problems:
            raise ConfigError(list(self.problems))


class _Problems:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.items: list[ConfigProblem] = []

    def add(self, file: Path, path: str, message: str, line: int | None = None) -> ConfigProblem:
        where = f"{path} (line {line})" if line and path else path
        problem = ConfigProblem(_display(file, self.root), where, message)
        self.items.append(problem)
        return problem


def _display(file: Path, root: Path) -> str:
    try:
        return str(file.relative_to(root.parent)) if root.parent != file else str(file)
    except ValueError:
        return str(file)


# --- reading files -------------------------------------------------------------------


@dataclass
class _Doc:
    file: Path
    data: Any
    node: yaml.Node | None


def _read_yaml(file: Path, problems: _Problems) -> _Doc | None:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        problems.add(file, "", f"cannot read the file ({exc.strerror}); check it exists")
        return None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, opened = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and opened is not None and (mark is None or opened.line != mark.line):
            # An unclosed bracket or quote is found lines later: say where it was opened.
            what += f", {context} that starts at line {opened.line + 1}, column {opened.column + 1}"
        problems.add(file, where, f"YAML syntax error: {what}; fix the syntax at that spot")
        return None
    if not isinstance(data, dict):
        problems.add(file, "", "the file must hold a mapping (key: value lines) at the top")
        return None
    return _Doc(file, data, node)


def _line(node: yaml.Node | None, path: tuple[str | int, ...]) -> int | None:
    """The 1-based line of `path` inside a composed YAML tree, as near as it exists.

    A mapping entry is found on the line of its key: a block value starts a line later.
    """
    found, mark = node, (node.start_mark if node is not None else None)
    for part in path:
        if isinstance(found, yaml.MappingNode):
            key, nxt = next(((k, v) for k, v in found.value if k.value == str(part)), (None, None))
            mark = key.start_mark if key is not None else mark
        elif isinstance(found, yaml.SequenceNode) and isinstance(part, int):
            nxt = found.value[part] if part < len(found.value) else None
            mark = nxt.start_mark if nxt is not None else mark
        else:
            nxt = None
        if nxt is None:
            break
        found = nxt
    return mark.line + 1 if mark is not None else None


def _parse(model: type[M], doc: _Doc, problems: _Problems) -> M | None:
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        seen: set[tuple[str, str]] = set()
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not str(p).startswith(("function-", "tagged-")))
            loc = _as_written(doc.data, tuple(p for p in loc if p not in _UNION_MEMBERS))
            path = ".".join(str(p) for p in loc) or "(top level)"
            message = _explain(err)
            if (path, message) not in seen:
                seen.add((path, message))
                problems.add(doc.file, path, message, _line(doc.node, loc))
        return None


_UNION_MEMBERS = ("Period", "SettingPeriod", "str", "int")


def _as_written(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Map a path inside a single-stage rule's implied stage back to where the file has it."""
    if len(loc) < 5 or loc[0] != "rules" or loc[2] != "stages" or loc[3] != 0:
        return loc
    rules = data.get("rules") if isinstance(data, dict) else None
    index = loc[1]
    if not isinstance(rules, list) or not isinstance(index, int) or index >= len(rules):
        return loc
    rule = rules[index]
    if not isinstance(rule, dict) or "stages" in rule:
        return loc
    field, rest = loc[4], loc[5:]
    if field == "period":
        return ("rules", index, "after", "period", *rest)
    return ("rules", index, field, *rest)


def _explain(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling"
    if kind == "missing":
        return "required field is missing; add it"
    message = str(err["msg"]).removeprefix("Value error, ")
    if "input" in err and kind not in ("model_type", "dict_type"):
        return f"{message} (got {err['input']!r})"
    return message


# --- the whole directory -----------------------------------------------------------------


def load_config(directory: Path | str) -> Config:
    """Read and check a configuration directory; never raises for bad content."""
    root = Path(directory)
    problems = _Problems(root)
    cat_file = root / "catalogue.yaml"
    if not root.is_dir():
        problems.add(
            root, "", "no such configuration directory; set --config or RETENTION_CONFIG_DIR"
        )
        return Config(root, _EMPTY_CATALOGUE, {}, {}, tuple(problems.items))
    doc = _read_yaml(cat_file, problems)
    catalogue = _parse(Catalogue, doc, problems) if doc else None
    if catalogue is None:
        return Config(root, _EMPTY_CATALOGUE, {}, {}, tuple(problems.items))
    if doc is not None:
        _check_catalogue(catalogue, doc, problems)

    products: dict[str, ProductMapping] = {}
    product_docs: dict[str, _Doc] = {}
    rule_owner: dict[str, Path] = {}
    set_aside: dict[str, str] = {}  # product → its file, which has problems
    for file in sorted((root / "products").glob("*.yaml")):
        set_aside[file.stem] = _display(file, root)
        pdoc = _read_yaml(file, problems)
        mapping = _parse(ProductMapping, pdoc, problems) if pdoc else None
        if mapping is None or pdoc is None:
            continue
        before = len(problems.items)
        _check_product(mapping, pdoc, catalogue, rule_owner, problems)
        if len(problems.items) == before:
            products[mapping.product] = mapping
            product_docs[mapping.product] = pdoc
            del set_aside[file.stem]

    parsed: list[tuple[Customer, _Doc]] = []
    for file in sorted((root / "customers").glob("*.yaml")):
        cdoc = _read_yaml(file, problems)
        customer = _parse(Customer, cdoc, problems) if cdoc else None
        if customer is None or cdoc is None:
            continue
        before = len(problems.items)
        _check_customer(customer, cdoc, catalogue, products, problems, set_aside)
        if len(problems.items) == before:
            parsed.append((customer, cdoc))
    clashing = _check_unique(parsed, products, problems)
    customers = {c.customer: c for c, _ in parsed if c.customer not in clashing}
    return Config(root, catalogue, products, customers, tuple(problems.items))


_EMPTY_CATALOGUE = Catalogue(kinds={}, categories={}, products={})


def _check_catalogue(cat: Catalogue, doc: _Doc, problems: _Problems) -> None:
    def add(path: tuple[str | int, ...], message: str) -> None:
        problems.add(doc.file, ".".join(str(p) for p in path), message, _line(doc.node, path))

    for pname, product in cat.products.items():
        for kind, categories in product.processes.items():
            path = ("products", pname, "processes", kind)
            if kind not in cat.kinds:
                add(path, f"unknown kind of person {kind!r}; use one of {', '.join(cat.kinds)}")
            for category in categories:
                if category not in cat.categories:
                    add(path, _unknown_category(category, cat))
    for fname, floor in cat.floors.items():
        for category in floor.applies_to:
            if category not in cat.categories:
                add(("floors", fname, "applies_to"), _unknown_category(category, cat))


def _unknown_category(category: str, cat: Catalogue) -> str:
    return (
        f"unknown category {category!r}; use one of {', '.join(cat.categories)} "
        "(or add it to catalogue.yaml)"
    )


def _check_product(
    mapping: ProductMapping,
    doc: _Doc,
    cat: Catalogue,
    rule_owner: dict[str, Path],
    problems: _Problems,
) -> None:
    def add(path: tuple[str | int, ...], message: str) -> None:
        problems.add(doc.file, ".".join(str(p) for p in path), message, _line(doc.node, path))

    if mapping.product != doc.file.stem:
        add(
            ("product",),
            f"the product is named {mapping.product!r} but the file is "
            f"{doc.file.name}; make them the same",
        )
    entry = cat.products.get(mapping.product)
    if entry is None:
        add(
            ("product",),
            f"unknown product {mapping.product!r}: catalogue.yaml does not list "
            f"it; use one of {', '.join(cat.products)} or add it to the catalogue",
        )
        return
    _check_schedule(mapping.schedule.cron, mapping.schedule.timezone, ("schedule",), add)
    for sname, subject in mapping.subjects.items():
        base: tuple[str | int, ...] = ("subjects", sname)
        if subject.kind not in cat.kinds:
            add(
                (*base, "kind"),
                f"unknown kind of person {subject.kind!r}; use one of {', '.join(cat.kinds)}",
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
                f"Annex A does not list {category!r} for {kind!r} in {label}: "
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
            f"unknown subject {rule.subject!r}; use one of {', '.join(mapping.subjects)}",
        )
        return
    if rule.after.date is not None and rule.after.date not in subject.dates:
        add(
            (*path, "after", "date"),
            f"subject {rule.subject!r} has no date "
            f"{rule.after.date!r}; use one of {', '.join(subject.dates) or '(none: add dates)'}",
        )
    if rule.floor is not None and rule.floor not in cat.floors:
        add((*path, "floor"), f"unknown floor {rule.floor!r}; use one of {', '.join(cat.floors)}")
    previous: Period | None = None
    for i, stage in enumerate(rule.stages):
        spath = (*path, "stages", i) if len(rule.stages) > 1 else path
        for column in stage.with_:
            if column not in subject.columns:
                add(
                    (*spath, "with", column),
                    f"column {column!r} is not mapped in subject "
                    f"{rule.subject!r}; map it under `columns` first",
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


def categories_touched(stage: Stage, subject: Subject) -> set[str]:
    """The categories a stage changes: anonymise its columns, delete everything."""
    if stage.action is Action.ANONYMISE:
        return {subject.columns[c] for c in stage.with_ if c in subject.columns}
    found = set(subject.columns.values())
    pending = list(subject.dependents)
    while pending:
        dep = pending.pop()
        found.update(dep.columns.values())
        pending.extend(dep.dependents)
    return found


def applicable_floors(rule: Rule, stage: Stage, subject: Subject, cat: Catalogue) -> list[str]:
    """Floors that bind a stage: named on the rule, or covering a category it touches."""
    touched = categories_touched(stage, subject)
    names = [n for n, f in cat.floors.items() if touched & set(f.applies_to)]
    if rule.floor is not None and rule.floor in cat.floors and rule.floor not in names:
        names.append(rule.floor)
    return sorted(names)


def _check_schedule(cron: str, timezone: str, path: tuple[str | int, ...], add: Any) -> None:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        add(
            (*path, "timezone"),
            f"unknown time zone {timezone!r}; use an IANA name such as Europe/Amsterdam",
        )
        return
    try:
        cron_trigger(cron, timezone)
    except ValueError as exc:
        add(
            (*path, "cron"),
            f"{cron!r} is not a crontab line ({exc}); write five fields (minute hour day "
            "month weekday), e.g. '0 2 * * *' for daily at 02:00, or six with seconds first",
        )


def _check_customer(
    customer: Customer,
    doc: _Doc,
    cat: Catalogue,
    products: Mapping[str, ProductMapping],
    problems: _Problems,
    set_aside: Mapping[str, str],
) -> None:
    def add(path: tuple[str | int, ...], message: str) -> None:
        problems.add(doc.file, ".".join(str(p) for p in path), message, _line(doc.node, path))

    if customer.customer != doc.file.stem:
        add(
            ("customer",),
            f"the customer is named {customer.customer!r} but the file is "
            f"{doc.file.name}; make them the same",
        )
    try:
        ZoneInfo(customer.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        add(
            ("timezone",),
            f"unknown time zone {customer.timezone!r}; use an IANA name such as Europe/Amsterdam",
        )
    for pname, chosen in customer.products.items():
        base: tuple[str | int, ...] = ("products", pname)
        mapping = products.get(pname)
        if mapping is None and pname in set_aside:
            # Its own file's problems are reported; this customer's other products still run.
            continue
        if mapping is None:
            known = ", ".join(sorted(products)) or "(none)"
            add(base, f"unknown product {pname!r}; this configuration maps {known}")
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
            for spec in (stage.period,):
                if isinstance(spec, SettingPeriod):
                    uses.setdefault(spec.setting, []).append((rule, stage))
    for name, value in settings.items():
        path = (*base, "settings", name)
        if name not in uses:
            add(
                path,
                f"unknown setting {name!r}; {mapping.product} rules read "
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
                f"unknown date {name!r}; {mapping.product} rules read "
                f"{', '.join(sorted(date_names)) or 'no customer dates'}",
            )


def _in_unit(period: Period, unit: Any) -> str:
    if str(unit) == "months" and period.unit.value == "years":
        return f"{period.amount * 12} months"
    return str(period)


def _check_unique(
    parsed: list[tuple[Customer, _Doc]],
    products: Mapping[str, ProductMapping],
    problems: _Problems,
) -> set[str]:
    """Two customers must never share a tenant id or a database: each would see the other's
    data. Every claimant of a shared one is set aside, since nobody can tell which is right.
    Returns the customers set aside."""
    claims: dict[tuple[str, ...], list[tuple[Customer, _Doc, tuple[str, ...]]]] = {}
    for customer, doc in parsed:
        for pname, chosen in customer.products.items():
            if pname not in products:
                continue
            if chosen.tenant is not None:
                claims.setdefault(("tenant", pname, str(chosen.tenant)), []).append(
                    (customer, doc, ("products", pname, "tenant"))
                )
            if chosen.database is not None:
                claims.setdefault(("database", chosen.database.url_env), []).append(
                    (customer, doc, ("products", pname, "database", "url_env"))
                )
    clashing: set[str] = set()
    for claim, owners in claims.items():
        if len(owners) < 2:
            continue
        names = sorted(c.customer for c, _, _ in owners)
        what = (
            f"tenant {claim[2]!r} of {claim[1]}"
            if claim[0] == "tenant"
            else f"database variable {claim[1]}"
        )
        for customer, doc, path in owners:
            others = ", ".join(n for n in names if n != customer.customer)
            problems.add(
                doc.file,
                ".".join(path),
                f"{what} is also claimed by {others}; each customer needs its own, so all "
                "of them are set aside until it is fixed",
                _line(doc.node, path),
            )
            clashing.add(customer.customer)
    return clashing
