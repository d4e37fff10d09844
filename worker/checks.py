"""Checks of the configuration against the live product databases (for `validate`).

Each database is checked once: a shared database once for its product, a per-customer
database once for its customer. Every problem points at the line of the product mapping
that names the missing table or column, at the customer's `tenant` when its value does not
convert exactly to the tenant column's type, or at the place that names the URL variable.

Masks and deletes are checked against the live constraints (`worker.constraints`): a mask
that cannot fit its column is a problem at the rule's `with` entry, a foreign key that refuses
a delete rule's deletes one at the rule's `action`; a foreign key that cascades is a warning.

Besides problems, the check says how many rows each customer has (a note), warns when a
customer's tenant value has none at all (a typo?), warns per time basis about values that
are not clean dates (kept as unknown, or read from another form), and about time bases no
index serves (with the `CREATE INDEX` that would).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from connectors.base import (
    Connector,
    ConnectorError,
    Problem,
    SchemaError,
    Table,
    Target,
    TenantValueError,
)
from connectors.tenantlinks import linked_tables
from worker.app import ConnectorFactory, url_variable
from worker.config import Customer, ProductMapping, Subject
from worker.config.language import FirstOf
from worker.configfiles import Doc, Problems, read_yaml
from worker.configload import Config
from worker.constraints import check_constraints
from worker.errors import ConfigProblem
from worker.targets import dependent_path, link_path, table_for

Path_ = tuple[str | int, ...]
_ANY_DAY = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # unused by a target that takes everything


@dataclass
class LiveResult:
    problems: list[ConfigProblem] = field(default_factory=list)  # fix the config or schema
    unreachable: list[str] = field(default_factory=list)  # fix the network or server
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # rows per customer
    checked: int = 0  # databases compared with their mapping


def check_live(config: Config, env: Mapping[str, str]) -> LiveResult:
    """Open every product database once and compare it with its mapping."""
    result = LiveResult()
    found = Problems(config.directory)
    docs: dict[Path, Doc | None] = {}

    def at(file: Path, path: Path_, message: str) -> None:
        """Report at `path` in `file`, reading each file once for line numbers."""
        if file not in docs:
            docs[file] = read_yaml(file, Problems(config.directory))
        doc = docs[file]
        if doc is None:
            found.add(file, ".".join(str(p) for p in path), message)
        else:
            found.at(doc, path, message)

    factory = ConnectorFactory(env, pepper=b"validate-only")
    groups: dict[tuple[str, str], list[Customer]] = {}
    for customer, mapping in config.pairs():
        groups.setdefault((mapping.product, url_variable(customer, mapping)), []).append(customer)
    seen: dict[tuple[str, ...], list[tuple[Customer, ProductMapping, str]]] = {}
    for (product, variable), customers in groups.items():
        mapping = config.products[product]
        shared = not mapping.tenancy.per_customer
        who = f"{product} (shared)" if shared else f"{customers[0].customer} × {product}"
        try:
            connector = factory(customers[0], mapping)
        except ConnectorError as exc:
            file, path = _variable_place(config.directory, mapping, customers[0])
            at(file, path, str(exc))
            continue
        try:
            connector.open()
            identity = connector.identity() if mapping.tenancy.per_customer else None
            if identity is not None:
                seen.setdefault((product, *identity), []).append((customers[0], mapping, variable))
            for problem, path in _compare(connector, mapping):
                if problem.fatal and problem.part:  # the mapping itself; the fix is said
                    at(_product_file(config.directory, mapping), path, str(problem))
                elif problem.fatal:
                    missing = "missing from the" in problem.message
                    fix = "create it there or correct the mapping" if missing else "correct it"
                    at(
                        _product_file(config.directory, mapping),
                        path,
                        f"{problem} of {who} ({variable}); {fix}",
                    )
                else:
                    result.warnings.append(f"{product}: {problem} ({who})")
            limits = check_constraints(connector, mapping)
            for path, message in limits.problems:
                at(
                    _product_file(config.directory, mapping),
                    path,
                    f"{message} (the database of {who}, {variable})",
                )
            result.warnings.extend(f"{product}: {w} ({who})" for w in limits.warnings)
            result.checked += 1
            for customer in customers:
                _check_rows(connector, customer, mapping, variable, at, result, config.directory)
            result.warnings.extend(_check_dates(connector, mapping, who))
        except ConnectorError as exc:
            result.unreachable.append(f"{who}: {exc}")
        finally:
            connector.close()
    for claimants in seen.values():
        _same_database(claimants, config.directory, at)
    result.problems = found.items
    return result


def _same_database(
    claimants: list[tuple[Customer, ProductMapping, str]],
    directory: Path,
    at: Callable[[Path, Path_, str], None],
) -> None:
    """Customers of a per-customer product whose databases are one, as the server says."""
    if len({customer.customer for customer, _, _ in claimants}) < 2:
        return
    for customer, mapping, variable in claimants:
        others = ", ".join(
            sorted(f"{c.customer} ({v})" for c, _, v in claimants if c is not customer)
        )
        file, path = _variable_place(directory, mapping, customer)
        at(
            file,
            path,
            f"{variable} reaches the same database as {others}, as the server itself says "
            "(the same server and database name, however the URLs spell the host): each "
            "customer needs its own database; point each variable at the customer's own",
        )


def _check_rows(
    connector: Connector,
    customer: Customer,
    mapping: ProductMapping,
    variable: str,
    at: Callable[[Path, Path_, str], None],
    result: LiveResult,
    directory: Path,
) -> None:
    """Count the customer's rows per subject table; refuse a tenant value that does not
    convert exactly; warn when a tenant value has no rows at all."""
    chosen = customer.products[mapping.product]
    column = mapping.tenancy.column
    tenant = chosen.tenant if column else None
    counts: dict[str, int] = {}
    linked: dict[str, None] = {}
    for subject in mapping.subjects.values():
        if subject.table in counts:
            continue
        spec = table_for(subject, mapping)
        linked.update(dict.fromkeys(linked_tables(spec)))
        target = Target(spec, tenant, None, _ANY_DAY.date(), _ANY_DAY)
        try:
            counts[subject.table] = connector.backlog(_everything(target)).count
        except TenantValueError as exc:
            _refuse_tenant(exc, customer, mapping, variable, at, directory)
            return
        except SchemaError:
            continue  # a missing table or column: reported by the schema comparison
    if column:  # every other table a rule filters by the tenant: the value must fit there too
        for name in linked:
            if name in counts:
                continue
            bare = Target(
                Table(name, (), tenant_column=column), tenant, None, _ANY_DAY.date(), _ANY_DAY
            )
            try:
                connector.backlog(_everything(bare))
            except TenantValueError as exc:
                _refuse_tenant(exc, customer, mapping, variable, at, directory)
                return
            except SchemaError:
                continue  # no tenant column there, or missing: the schema comparison says
    total = sum(counts.values())
    each = ", ".join(f"{table} {n}" for table, n in counts.items())
    if column:
        result.notes.append(
            f"{customer.customer} × {mapping.product}: {total} row(s) with {column} "
            f"{tenant!r} ({each})"
        )
        if total == 0:
            result.warnings.append(
                f"{mapping.product}: no row in {', '.join(counts) or 'any table'} has "
                f"{column} {tenant!r} of {customer.customer}: a typo in "
                f"products.{mapping.product}.tenant of customers/{customer.customer}.yaml?"
            )
    else:
        result.notes.append(
            f"{customer.customer} × {mapping.product}: {total} row(s) in its own database ({each})"
        )


def _refuse_tenant(
    exc: TenantValueError,
    customer: Customer,
    mapping: ProductMapping,
    variable: str,
    at: Callable[[Path, Path_, str], None],
    directory: Path,
) -> None:
    at(
        directory / "customers" / f"{customer.customer}.yaml",
        ("products", mapping.product, "tenant"),
        f"{exc} (customer {customer.customer}, the {mapping.product} database, {variable})",
    )


def _everything(target: Target) -> Target:
    return Target(
        target.table, target.tenant, None, target.cutoff_date, target.cutoff_instant, True
    )


def _date_columns(subject: Subject) -> list[tuple[str, str]]:
    """(date name, column) of every column of the subject's own table its dates read."""
    found: list[tuple[str, str]] = []
    for date_name, spec in subject.dates.items():
        if isinstance(spec, str):
            found.append((date_name, spec))
        elif isinstance(spec, FirstOf):
            found += [(date_name, column) for column in spec.first_of]
        elif spec.if_none != "keep" and isinstance(subject.dates.get(spec.if_none), str):
            found.append((date_name, str(subject.dates[spec.if_none])))
    return found


def _check_dates(connector: Connector, mapping: ProductMapping, who: str) -> list[str]:
    """A warning per time basis that holds values other than clean dates."""
    warnings: list[str] = []
    seen: set[tuple[str, str]] = set()
    for name, subject in mapping.subjects.items():
        for date_name, column in _date_columns(subject):
            if (subject.table, column) in seen:
                continue
            seen.add((subject.table, column))
            try:
                quality = connector.date_quality(subject.table, column)
            except SchemaError:
                continue  # reported by the schema comparison
            where = (
                f"{mapping.product}: {subject.table}.{column} (subjects.{name}.dates.{date_name})"
            )
            if quality.unknown:
                warnings.append(
                    f"{where}: {quality.unknown} row(s) hold no date the worker can read (a "
                    "zero date, empty or unreadable text, infinity, or a date before 1900); "
                    f"they are kept, never expired: correct them in the database ({who})"
                )
            if quality.converted:
                warnings.append(
                    f"{where}: {quality.converted} row(s) hold a number or a text with a 'T' "
                    "or a zone; they are read as UTC instants with SQLite's date functions "
                    "(10000101 to 99991231 as YYYYMMDD dates, up to 5373484.5 as Julian days, "
                    f"from 10^11 as Unix milliseconds, others as Unix seconds) ({who})"
                )
    return warnings


def _compare(connector: Connector, mapping: ProductMapping) -> list[tuple[Problem, Path_]]:
    pairs: list[tuple[Problem, Path_]] = []
    for name, subject in mapping.subjects.items():
        for problem in connector.verify([table_for(subject, mapping)]):
            pairs.append((problem, _path(name, subject, mapping, problem)))
    return pairs


def _path(name: str, subject: Subject, mapping: ProductMapping, problem: Problem) -> Path_:
    """Where in the product mapping the table or column of a problem is named."""
    base: Path_ = ("subjects", name)
    if problem.part:
        return link_path(name, subject, mapping, problem) or base
    if problem.table != subject.table:
        found = dependent_path(subject.dependents, problem.table, (*base, "dependents"))
        if found is None:
            return (*base, "dependents")
        dep, dep_base = found
        if problem.column in dep.columns:
            return (*dep_base, "columns", problem.column)
        if problem.column in dep.references:
            return (*dep_base, "references", problem.column)
        if problem.column is not None and problem.column == mapping.tenancy.column:
            return ("tenancy", "column")
        return (*dep_base, "table")
    if problem.column is None:
        return (*base, "table")
    if problem.column in subject.columns:
        return (*base, "columns", problem.column)
    for date_name, column in _date_columns(subject):
        if column == problem.column:
            return (*base, "dates", date_name)
    if problem.column in subject.key:
        return (*base, "key")
    if problem.column == mapping.tenancy.column:
        return ("tenancy", "column")
    return base


def _product_file(directory: Path, mapping: ProductMapping) -> Path:
    return directory / "products" / f"{mapping.product}.yaml"


def _variable_place(
    directory: Path, mapping: ProductMapping, customer: Customer
) -> tuple[Path, Path_]:
    """The file, and the path inside it, that name a database's URL variable."""
    if mapping.tenancy.per_customer:
        file = directory / "customers" / f"{customer.customer}.yaml"
        return file, ("products", mapping.product, "database", "url_env")
    return _product_file(directory, mapping), ("database", "url_env")
