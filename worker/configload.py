"""Load the three kinds of configuration file and check them against each other.

A problem in one customer's file sets that customer aside; a problem in a product mapping
sets that product aside (its customers' other products still run); the rest of the
configuration stays usable. Reading lives in `worker.configfiles`, the checks across
files in `worker.configcheck`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from worker.config import Catalogue, Customer, ProductMapping
from worker.configcheck import check_catalogue, check_customer, check_product, check_unique
from worker.configfiles import Doc, Problems, parse_model, read_yaml
from worker.errors import ConfigError, ConfigProblem


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


def load_config(directory: Path | str) -> Config:
    """Read and check a configuration directory; never raises for bad content."""
    root = Path(directory)
    problems = Problems(root)
    cat_file = root / "catalogue.yaml"
    if not root.is_dir():
        problems.add(
            root, "", "no such configuration directory; set --config or RETENTION_CONFIG_DIR"
        )
        return Config(root, _EMPTY_CATALOGUE, {}, {}, tuple(problems.items))
    doc = read_yaml(cat_file, problems)
    catalogue = parse_model(Catalogue, doc, problems) if doc else None
    if catalogue is None:
        return Config(root, _EMPTY_CATALOGUE, {}, {}, tuple(problems.items))
    if doc is not None:
        check_catalogue(catalogue, doc, problems)

    products: dict[str, ProductMapping] = {}
    rule_owner: dict[str, Path] = {}
    set_aside: set[str] = set()  # products whose own file has problems
    for file in sorted((root / "products").glob("*.yaml")):
        set_aside.add(file.stem)
        pdoc = read_yaml(file, problems)
        mapping = parse_model(ProductMapping, pdoc, problems) if pdoc else None
        if mapping is None or pdoc is None:
            continue
        before = len(problems.items)
        check_product(mapping, pdoc, catalogue, rule_owner, problems)
        if len(problems.items) == before:
            products[mapping.product] = mapping
            set_aside.discard(file.stem)

    parsed: list[tuple[Customer, Doc]] = []
    for file in sorted((root / "customers").glob("*.yaml")):
        cdoc = read_yaml(file, problems)
        customer = parse_model(Customer, cdoc, problems) if cdoc else None
        if customer is None or cdoc is None:
            continue
        before = len(problems.items)
        check_customer(customer, cdoc, catalogue, products, problems, set_aside)
        if len(problems.items) == before:
            parsed.append((customer, cdoc))
    clashing = check_unique(parsed, products, problems)
    customers = {c.customer: c for c, _ in parsed if c.customer not in clashing}
    return Config(root, catalogue, products, customers, tuple(problems.items))


_EMPTY_CATALOGUE = Catalogue(kinds={}, categories={}, products={})
