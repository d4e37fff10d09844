"""Load the three kinds of configuration file and check them against each other.

A problem in one customer's file sets that customer aside; a problem in a product mapping
sets that product aside (its customers' other products still run); the rest of the
configuration stays usable. `load_config` never raises for what the files hold, so the daemon
can always keep its previous configuration on a bad reload: even a fault of the worker's own
checks becomes a problem of the file being checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from worker.config.checks import check_catalogue, check_customer, check_product
from worker.config.files import WHOLE_FILE, Doc, Problems, parse_model, read_yaml, yaml_files
from worker.config.models import Catalogue, Customer, ProductMapping
from worker.config.unique import check_unique
from worker.errors import ConfigError, ConfigProblem

T = TypeVar("T")


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
        """Raise ConfigError listing every problem, if there is one."""
        if self.problems:
            raise ConfigError(list(self.problems))


def load_config(directory: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Read and check a configuration directory: catalogue.yaml, products/, customers/.

    Never raises for bad content: every problem, including a fault of the checks themselves,
    is in `Config.problems`, and what it touches is left out of the returned configuration.
    Given the environment `env`, customers whose URL variables name one database are set
    aside too (`worker.config.samedb`; nothing is opened).
    """
    root = Path(directory)
    problems = Problems(root)
    try:
        return _load(root, problems, env)
    except Exception as exc:  # noqa: BLE001  (the daemon must keep its configuration)
        _fault(problems, root, exc)
        return Config(root, _EMPTY_CATALOGUE, {}, {}, tuple(problems.items))


def _load(root: Path, problems: Problems, env: Mapping[str, str] | None = None) -> Config:
    if not root.is_dir():
        problems.add(
            root, "", "no such configuration directory; set --config or RETENTION_CONFIG_DIR"
        )
        return Config(root, _EMPTY_CATALOGUE, {}, {}, tuple(problems.items))
    cat_file = root / "catalogue.yaml"
    if not cat_file.exists() and (root / "catalogue.yml").exists():
        problems.add(root / "catalogue.yml", WHOLE_FILE, "rename it to catalogue.yaml")
        return Config(root, _EMPTY_CATALOGUE, {}, {}, tuple(problems.items))

    def read_catalogue() -> Catalogue | None:
        doc = read_yaml(cat_file, problems)
        catalogue = parse_model(Catalogue, doc, problems) if doc else None
        if catalogue is not None and doc is not None:
            check_catalogue(catalogue, doc, problems)
        return catalogue

    catalogue = _guarded(problems, cat_file, read_catalogue)
    if catalogue is None:
        return Config(root, _EMPTY_CATALOGUE, {}, {}, tuple(problems.items))

    products: dict[str, ProductMapping] = {}
    rule_owner: dict[str, Path] = {}
    set_aside: set[str] = set()  # products whose own file has problems
    for file in yaml_files(root / "products", problems):
        set_aside.add(file.stem)

        def read_product(file: Path = file) -> ProductMapping | None:
            pdoc = read_yaml(file, problems)
            mapping = parse_model(ProductMapping, pdoc, problems) if pdoc else None
            if mapping is None or pdoc is None:
                return None
            before = len(problems.items)
            check_product(mapping, pdoc, catalogue, rule_owner, problems)
            return mapping if len(problems.items) == before else None

        mapping = _guarded(problems, file, read_product)
        if mapping is not None:
            products[mapping.product] = mapping
            set_aside.discard(file.stem)

    parsed: list[tuple[Customer, Doc]] = []
    for file in yaml_files(root / "customers", problems):

        def read_customer(file: Path = file) -> tuple[Customer, Doc] | None:
            cdoc = read_yaml(file, problems)
            customer = parse_model(Customer, cdoc, problems) if cdoc else None
            if customer is None or cdoc is None:
                return None
            before = len(problems.items)
            check_customer(customer, cdoc, catalogue, products, problems, set_aside)
            return (customer, cdoc) if len(problems.items) == before else None

        found = _guarded(problems, file, read_customer)
        if found is not None:
            parsed.append(found)
    clashing = check_unique(parsed, products, problems, env)
    customers = {c.customer: c for c, _ in parsed if c.customer not in clashing}
    return Config(root, catalogue, products, customers, tuple(problems.items))


def _guarded(problems: Problems, file: Path, read: Callable[[], T | None]) -> T | None:
    """`read()`, or None with a problem for `file` when it raises: that file is set aside."""
    try:
        return read()
    except Exception as exc:  # noqa: BLE001  (one file's fault must not stop the others)
        _fault(problems, file, exc)
        return None


def _fault(problems: Problems, file: Path, exc: Exception) -> None:
    problems.add(
        file,
        WHOLE_FILE,
        f"the worker could not check this file ({type(exc).__name__}: "
        f"{str(exc)[:200]}); it is set aside. This is a fault in retention-worker: report it "
        "with the file, and meanwhile look for an unusual value in it",
    )


_EMPTY_CATALOGUE = Catalogue(kinds={}, categories={}, products={})
