"""Checks of the configuration against the live product databases (for `validate`).

Each database is checked once: a shared database once for its product, a per-customer
database once for its customer. Every problem points at the line of the product mapping
that names the missing table or column, or at the place that names the URL variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from connectors.base import Connector, ConnectorError, Problem
from worker.app import ConnectorFactory, url_variable
from worker.config import Customer, ProductMapping, Subject
from worker.configfiles import Doc, Problems, read_yaml
from worker.configload import Config
from worker.errors import ConfigProblem
from worker.targets import table_for

Path_ = tuple[str | int, ...]


@dataclass
class LiveResult:
    problems: list[ConfigProblem] = field(default_factory=list)  # fix the config or schema
    unreachable: list[str] = field(default_factory=list)  # fix the network or server
    warnings: list[str] = field(default_factory=list)
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
            for problem, path in _compare(connector, mapping):
                if problem.fatal:
                    at(
                        _product_file(config.directory, mapping),
                        path,
                        f"{problem} in the database of {who} ({variable}); create it there "
                        "or correct the mapping",
                    )
                else:
                    result.warnings.append(f"{product}: {problem} ({who})")
            result.checked += 1
        except ConnectorError as exc:
            result.unreachable.append(f"{who}: {exc}")
        finally:
            connector.close()
    result.problems = found.items
    return result


def _compare(connector: Connector, mapping: ProductMapping) -> list[tuple[Problem, Path_]]:
    pairs: list[tuple[Problem, Path_]] = []
    for name, subject in mapping.subjects.items():
        for problem in connector.verify([table_for(subject, mapping)]):
            pairs.append((problem, _path(name, subject, mapping, problem)))
    return pairs


def _path(name: str, subject: Subject, mapping: ProductMapping, problem: Problem) -> Path_:
    """Where in the product mapping the table or column of a problem is named."""
    base: Path_ = ("subjects", name)
    if problem.table != subject.table:
        for i, dep in enumerate(subject.dependents):
            if dep.table == problem.table:
                dep_base: Path_ = (*base, "dependents", i)
                if problem.column in dep.columns:
                    return (*dep_base, "columns", problem.column)
                if problem.column in dep.references:
                    return (*dep_base, "references", problem.column)
                return (*dep_base, "table")
        return (*base, "dependents")
    if problem.column is None:
        return (*base, "table")
    if problem.column in subject.columns:
        return (*base, "columns", problem.column)
    for date_name, column in subject.dates.items():
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
